#!/usr/bin/env python3
"""Writes fuzz/seeds/: one record per request in tests/vectors/twilio-signatures.json.

The record format is `reference::Record` (fuzz/src/lib.rs): b"TWSV", then secret, URL, body,
signature and settings, each as a little-endian u16 length and the bytes (0xFFFF = header absent).
Every target accepts these records as well as its `arbitrary` input, so the fuzzer starts from every
real vector. Run it again when the vectors change; the output is deterministic.
"""

import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "twilio-signatures.json"
OUT = ROOT / "fuzz" / "seeds"
ABSENT = 0xFFFF


def field(value):
    if value is None:
        return struct.pack("<H", ABSENT)
    data = value.encode("utf-8")
    assert len(data) < ABSENT, "field too long for a seed record"
    return struct.pack("<H", len(data)) + data


def main():
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.twsv"):
        old.unlink()
    for v in vectors:
        body = v["body"] if v["body"] is not None else (v["form_body"] or "")
        record = b"TWSV" + b"".join(
            field(x) for x in (v["secret"], v["url"], body, v["signature"], v["signature_settings"])
        )
        (OUT / f"{v['id']}.twsv").write_bytes(record)
    print(f"wrote {len(vectors)} seed records to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
