"""A filter that keeps state, for test_state.py: what it does to its state
is chosen by the alert's `op` field. Its own module, so that the component
glue can bind it (a module declares one filter).
"""

import copy

import bandpass

# The state each call received, as it was on arrival.
SEEN = []


@bandpass.filter(
    name="stateful-probe",
    version="0.1.0",
    survey="any",
    description="Does to its state what each alert says.",
    fields={"op": "candidate.op", "size": "candidate.size?"},
    params={"accept": True},
    state=bandpass.State(format="probe/1", max_bytes=64),
)
def stateful_probe(op, size, state, params):
    SEEN.append(copy.deepcopy(dict(state)))
    if op == "count":
        state["n"] = state.get("n", 0) + 1
    elif op == "forget":
        state.clear()
    elif op == "nan":
        state["x"] = float("nan")  # line: nan
    elif op == "set":
        state["tags"] = {"a", "b"}  # line: set
    elif op == "int-key":
        state.setdefault("by_band", {})[2] = 18.5
    elif op == "nested-int-key":
        state["by_band"][2] = 18.5  # line: nested int key
    elif op == "update-inf":
        state.update(x=float("inf"))
    elif op == "object":
        state.update(x=[1, {"when": object()}])
    elif op == "big":
        state["blob"] = "x" * size
    elif op == "raise":
        state["n"] = 999
        raise bandpass.FilterError("failed after changing the state")
    elif op == "none":
        state["n"] = 999
        return None
    elif op == "tuple":
        state["pair"] = (1, 2)
    return bandpass.accept(notes={"n": state.get("n", 0)}) if params.accept else bandpass.reject()
