#!/usr/bin/env python3
"""Expected verdicts of the sample science filters, computed independently.

An implementation in Python, with fastavro, of the cuts that each science
filter's README.md under sample-filters/ states, with the filters' default
parameters. The host's integration tests run the real WebAssembly filters on
the same alert files and compare, alert by alert, so that a filter (or the
host's decoding of the fields it reads) that drifts from its documented cuts
fails a test.

Usage:
    python3 tests/py/expected_verdicts.py [--summary] FILE...

Each FILE is an Avro Object Container File holding alerts (a ZTF alert
packet, a Rubin `fakeAlert.avro`). Prints one JSON object to stdout:

    {"<file path>": {"bright-transients": "accept" | "reject" | "skip", ...}}

"skip" where the filter's survey does not match the alert's (a ZTF filter on
a Rubin alert). A file holding more than one alert gives keys "<path>#<i>"
for alerts i >= 1 (the first alert keeps the bare path). `--summary` also
prints the number of accepts per filter to stderr.

A filter that keeps a state per object (rise-once) is judged over all the
files together: its alerts in time order (candidate.jd; equal times, and
the alerts with none, first, in the order given), with one state per
objectId, as the host keeps it.

Field semantics follow the contract (wit/filter.wit): a null value, a null
record or array on the way, or an optional field the writer schema lacks
is "absent" (None here); a path through an array is a column.
"""

import json
import sys

import fastavro

ZTF = "ztf"
RUBIN = "rubin"

# Shared by the ZTF filters: a known solar-system object within this many
# arcsec of the detection makes it an asteroid.
SSO_RADIUS_ARCSEC = 5.0


def survey_of(schema):
    """The survey an alert's writer schema belongs to, from its full name."""
    name = schema.get("name", "")
    namespace = schema.get("namespace", "")
    full = name if "." in name else f"{namespace}.{name}"
    if full.startswith("ztf."):
        return ZTF
    if full.startswith("lsst."):
        return RUBIN
    return "unknown"


def is_positive(isdiffpos):
    """ZTF's sign of the difference: "t" or "1" when brighter than the reference."""
    return isdiffpos in ("t", "1")


def realbogus(cand):
    """Deep real-bogus (drb, schema v3.3+) where present and not null, else rb."""
    drb = cand.get("drb")
    return drb if drb is not None else cand.get("rb")


def near_known_sso(cand):
    d = cand.get("ssdistnr")
    return d is not None and 0.0 <= d <= SSO_RADIUS_ARCSEC


# --- a. bright-transients ---------------------------------------------------

def bright_transients(alert):
    c = alert["candidate"]
    real = realbogus(c)
    mag = c["magpsf"]
    ndethist = c["ndethist"]
    if real is None or mag is None or ndethist is None:
        return False
    return (
        is_positive(c["isdiffpos"])
        and mag <= 18.5
        and real >= 0.65
        and ndethist >= 2
        and not near_known_sso(c)
    )


# --- b. asteroids -----------------------------------------------------------

def asteroids(alert):
    c = alert["candidate"]
    real = realbogus(c)
    dist = c["ssdistnr"]
    ssmag = c["ssmagnr"]
    if dist is None or ssmag is None or real is None:
        return False
    return (
        is_positive(c["isdiffpos"])
        and real >= 0.65
        and 0.0 <= dist <= 5.0
        and ssmag > 0.0
    )


# --- c. fast-risers ---------------------------------------------------------

def fastest_rise(alert, jd, fid, mag, min_baseline_days):
    """Largest (reference - mag) / (jd - jd_i) over earlier epochs in band fid."""
    rows = alert.get("prv_candidates") or []
    needed = ("jd", "fid", "magpsf", "isdiffpos", "diffmaglim")
    # Previous candidates whose schema lacks one of these (the v3.5 forced-
    # photometry test packets) give no usable light curve.
    if any(any(key not in row for key in needed) for row in rows):
        return None
    best = None
    for row in rows:
        if row["jd"] is None or row["fid"] is None:
            continue
        baseline = jd - row["jd"]
        if row["fid"] != fid or baseline < min_baseline_days:
            continue
        if row["magpsf"] is not None:
            if not is_positive(row["isdiffpos"]):
                continue  # a negative detection says nothing about a rise
            reference = row["magpsf"]
        elif row["diffmaglim"] is not None:
            reference = row["diffmaglim"]  # fainter than the limit then
        else:
            continue
        rate = (reference - mag) / baseline
        if best is None or rate > best:
            best = rate
    return best


def fast_risers(alert):
    c = alert["candidate"]
    real = realbogus(c)
    jd, fid, mag = c["jd"], c["fid"], c["magpsf"]
    if jd is None or fid is None or mag is None:
        return False
    if not (
        is_positive(c["isdiffpos"])
        and real is not None
        and real >= 0.65
        and c["ndethist"] is not None
        and c["ndethist"] >= 2
        and not near_known_sso(c)
    ):
        return False
    rise = fastest_rise(alert, jd, fid, mag, min_baseline_days=0.5)
    return rise is not None and rise >= 0.5


# --- d. nuclear-transients --------------------------------------------------

def nuclear_transients(alert):
    c = alert["candidate"]
    real = realbogus(c)

    def within(value, limit):
        return value is not None and 0.0 <= value <= limit

    return (
        real is not None
        and real >= 0.65
        and within(c["distnr"], 0.5)
        and within(c["distpsnr1"], 1.0)
        and within(c["sgscore1"], 0.5)
        and not near_known_sso(c)
    )


# --- e. rubin-bright --------------------------------------------------------

def rubin_bright(alert):
    s = alert["diaSource"]
    flux = s.get("psfFlux")
    if flux is None:
        flux = s.get("psFlux")  # its name in schemas 3.0 and 4.0
    if flux is None:
        return False
    min_flux = 10.0 ** ((31.4 - 24.0) / 2.5)  # 24.0 AB in nJy
    reliability = s.get("reliability")
    spuriousness = s.get("spuriousness")
    if reliability is not None:
        reliable = reliability >= 0.5
    elif spuriousness is not None:
        reliable = 1.0 - spuriousness >= 0.5
    else:
        reliable = True
    sso = s.get("ssObjectId")
    snr = s.get("snr")
    return (
        flux > 0.0
        and flux >= min_flux
        and snr is not None
        and snr >= 20.0
        and reliable
        and (sso is None or sso == 0)
        and s.get("pixelFlags_saturatedCenter") is not True
    )


# --- f. rise-once (a state per object) -------------------------------------

def rise_once(alert, state, min_rise=0.5, min_days=1.0):
    """One alert of an object; `state` is the object's dict, changed in
    place. Returns "accept" or "reject"."""
    c = alert["candidate"]
    jd, fid, mag = c.get("jd"), c.get("fid"), c.get("magpsf")
    if jd is None or fid is None or mag is None or not is_positive(c.get("isdiffpos")):
        return "reject"
    if state.get("done"):
        return "reject"
    since = state.get("since", jd)
    faintest = state.setdefault("faintest", {})
    f = faintest.get(str(fid))
    if f is not None and f - mag >= min_rise and jd - since >= min_days:
        state["done"] = True
        return "accept"
    faintest[str(fid)] = mag if f is None else max(f, mag)
    state["since"] = min(since, jd)
    return "reject"


def remembering(alerts):
    """{key: verdict} of the stateful filters over (key, alert, survey)
    triples, in time order with a state per object."""
    def when(i):
        jd = alerts[i][1].get("candidate", {}).get("jd") if alerts[i][2] == ZTF else None
        return (0, 0.0, i) if jd is None else (1, jd, i)

    states = {}
    out = {key: {} for key, _, _ in alerts}
    for i in sorted(range(len(alerts)), key=when):
        key, alert, survey = alerts[i]
        if survey != ZTF:
            out[key]["rise-once"] = "skip"
            continue
        state = states.setdefault(alert["objectId"], {})
        out[key]["rise-once"] = rise_once(alert, state)
    return out


FILTERS = [
    ("bright-transients", ZTF, bright_transients),
    ("asteroids", ZTF, asteroids),
    ("fast-risers", ZTF, fast_risers),
    ("nuclear-transients", ZTF, nuclear_transients),
    ("rubin-bright", RUBIN, rubin_bright),
]


def verdicts(alert, survey):
    out = {}
    for name, filter_survey, cut in FILTERS:
        if filter_survey != survey:
            out[name] = "skip"
        else:
            out[name] = "accept" if cut(alert) else "reject"
    return out


def main(argv):
    args = [a for a in argv if a != "--summary"]
    summary = len(args) != len(argv)
    if not args:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    result = {}
    alerts = []
    for path in args:
        with open(path, "rb") as fh:
            reader = fastavro.reader(fh)
            survey = survey_of(reader.writer_schema)
            for i, alert in enumerate(reader):
                key = path if i == 0 else f"{path}#{i}"
                result[key] = verdicts(alert, survey)
                alerts.append((key, alert, survey))
    for key, stateful in remembering(alerts).items():
        result[key].update(stateful)
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()
    if summary:
        for name in [n for n, _, _ in FILTERS] + ["rise-once"]:
            accepted = sorted(k for k, v in result.items() if v[name] == "accept")
            judged = sum(1 for v in result.values() if v[name] != "skip")
            print(f"{name}: {len(accepted)} of {judged} accepted", file=sys.stderr)
            for key in accepted:
                print(f"    {key}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
