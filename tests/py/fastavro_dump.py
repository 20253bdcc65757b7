#!/usr/bin/env python3
"""Independent reference decoder for bandpass's decoder tests.

Usage: python3 tests/py/fastavro_dump.py FILE.avro [FILE.avro ...]

Reads each Avro container file with fastavro (`pip install fastavro`;
`cramjam` and `backports.zstd` for the snappy and zstandard codecs) and
prints one JSON object: {file: [record, ...]}, each record a map from every
leaf path to its value, following the same path rules as bandpass's
decoder (host/src/decode):

- records flatten to dotted paths (`candidate.magpsf`);
- a union follows the branch written; null on the way gives null for every
  leaf below;
- a path through one array is a column: a list with one entry per element
  (null where the element's value is null), or null when the array itself
  is null; paths crossing two arrays, paths into maps and columns of bytes
  are not emitted (bandpass reports them Missing);
- a record that defines a field name twice (invalid Avro that fastavro
  reads) gives that name's path the last field's value, as fastavro's dict
  of the record holds it;
- values are tagged strings so that the comparison is exact:
  "bool:true", "int:42", "real:<16 hex digits of the IEEE-754 double>"
  (float widened to double; every NaN is "real:nan"), "text:...",
  "bytes:<hex>". Logical types are not applied (raw values).

The Rust test tests/all/decode.rs runs this script and compares.
"""

import json
import struct
import sys

try:
    import fastavro
    import fastavro.read
except ImportError:
    sys.stderr.write(
        "fastavro is not installed: run `pip install fastavro` "
        "(needed by tests/py/fastavro_dump.py)\n"
    )
    sys.exit(3)

# Raw values: no datetime/decimal/uuid conversion.
fastavro.read.LOGICAL_READERS.clear()

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def enc(kind, v):
    if kind == "boolean":
        return "bool:" + ("true" if v else "false")
    if kind in ("int", "long"):
        return "int:%d" % v
    if kind in ("float", "double"):
        if v != v:
            return "real:nan"
        return "real:%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]
    if kind in ("string", "enum"):
        return "text:" + v
    if kind in ("bytes", "fixed"):
        return "bytes:" + bytes(v).hex()
    raise ValueError("unexpected kind " + kind)


class Walker:
    def __init__(self):
        self.names = {}

    def full(self, name, ns):
        if "." in name or not ns:
            return name
        return ns + "." + name

    def resolve(self, t, ns):
        """Returns (type, namespace for its children), registering named
        definitions and following references."""
        if isinstance(t, str):
            if t in PRIMITIVES:
                return t, ns
            for cand in ([t] if "." in t or not ns else [ns + "." + t, t]):
                if cand in self.names:
                    return self.names[cand]
            raise ValueError("unknown type " + t)
        if isinstance(t, dict):
            kind = t["type"]
            if isinstance(kind, (dict, list)):
                return self.resolve(kind, ns)
            if kind in ("record", "error", "enum", "fixed"):
                name = t["name"]
                child_ns = t.get("namespace", ns) if "." not in name else name.rsplit(".", 1)[0]
                full = self.full(name, child_ns)
                self.names.setdefault(full, (t, child_ns))
                return t, child_ns
            if kind in PRIMITIVES:
                return kind, ns
            if kind in ("array", "map"):
                return t, ns
            return self.resolve(kind, ns)
        return t, ns  # union (list)

    @staticmethod
    def kind(t):
        if isinstance(t, str):
            return t
        if isinstance(t, list):
            return "union"
        return t["type"]

    def pick(self, branches, ns, v):
        """The union branch a (non-null) value was written with."""
        matches = []
        for b in branches:
            rt, _ = self.resolve(b, ns)
            k = self.kind(rt)
            ok = (
                (k == "boolean" and isinstance(v, bool))
                or (k in ("int", "long") and isinstance(v, int) and not isinstance(v, bool))
                or (k in ("float", "double") and isinstance(v, float))
                or (k in ("string", "enum") and isinstance(v, str))
                or (k in ("bytes", "fixed") and isinstance(v, (bytes, bytearray)))
                or (k in ("record", "error", "map") and isinstance(v, dict))
                or (k == "array" and isinstance(v, list))
            )
            if ok:
                matches.append(b)
        if len(matches) != 1:
            raise ValueError("cannot tell which union branch %r was written with" % (v,))
        return matches[0]

    def emit(self, t, ns, path, v, absent, in_array, sink):
        t, ns = self.resolve(t, ns)
        k = self.kind(t)
        if k == "union":
            non_null = [b for b in t if b != "null"]
            for b in non_null:
                self.emit(b, ns, path, None, True, in_array, sink)
            if not non_null and not in_array:
                sink[path] = None
            if not absent and v is not None:
                self.emit(self.pick(non_null, ns, v), ns, path, v, False, in_array, sink)
            return
        if k in ("record", "error"):
            fields = t["fields"]
            for i, f in enumerate(fields):
                sub = f["name"] if not path else path + "." + f["name"]
                if any(g["name"] == f["name"] for g in fields[i + 1:]):
                    # A name defined twice: fastavro's dict keeps the last
                    # value. Walked without a value only to register the
                    # named types it defines.
                    self.emit(f["type"], ns, sub, None, True, in_array, {})
                    continue
                self.emit(f["type"], ns, sub, None if absent else v[f["name"]], absent, in_array, sink)
            return
        if k == "array":
            if in_array:
                return
            shape = {}
            self.emit(t["items"], ns, path, None, True, True, shape)
            if absent:
                for p in shape:
                    sink[p] = None
                return
            cols = {p: [] for p in shape}
            for item in v:
                elem = {}
                self.emit(t["items"], ns, path, item, False, True, elem)
                for p in cols:
                    cols[p].append(elem.get(p))
            sink.update(cols)
            return
        if k == "map":
            return
        if k == "null":
            if not in_array:
                sink[path] = None
            return
        if in_array and k in ("bytes", "fixed"):
            return
        sink[path] = None if absent else enc(k, v)


def dump(path):
    with open(path, "rb") as fh:
        reader = fastavro.reader(fh)
        schema = json.loads(reader.metadata["avro.schema"])
        records = list(reader)
    out = []
    for rec in records:
        w = Walker()
        sink = {}
        w.emit(schema, "", "", rec, False, False, sink)
        out.append(sink)
    return out


def main(argv):
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    result = {f: dump(f) for f in argv}
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
