#!/usr/bin/env python3
"""Turns tests/vectors/twilio-signatures.json (the single source) into a line format C reads with sscanf.

One vector per line, space-separated:
    id expect algorithm secret url body signature settings key_id
`expect` is 1 or 0, `algorithm` 1 (HMAC_SHA1) or 2 (HMAC_SHA256) as in enum tws_algorithm; every other
field but `id` is `-` when null (an absent header, no key id) or `x` followed by the bytes in hex (so
`x` alone is present and empty). The body is `form_body` for form vectors and `body` for JSON ones.
"""

import json
import sys

ALGORITHMS = {"HMAC_SHA1": 1, "HMAC_SHA256": 2}


def field(text):
    return "-" if text is None else "x" + text.encode("utf-8").hex()


def key_id(settings):
    """The `key=` item of the settings header, which names the SharedKey the secret belongs to."""
    for item in (settings or "").split(","):
        name, _, value = item.partition("=")
        if name.strip().lower() == "key":
            return value.strip()
    return None


def main(source, target):
    with open(source, encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    lines = []
    for v in vectors:
        body = v["form_body"] if v["body"] is None else v["body"]
        if body is None:
            sys.exit(f"{v['id']}: neither form_body nor body")
        lines.append(
            " ".join(
                [
                    v["id"],
                    "1" if v["expect"] else "0",
                    str(ALGORITHMS[v["algorithm"]]),
                    field(v["secret"]),
                    field(v["url"]),
                    field(body),
                    field(v["signature"]),
                    field(v["signature_settings"]),
                    field(key_id(v["signature_settings"])),
                ]
            )
        )
    with open(target, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{target}: {len(lines)} vectors")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
