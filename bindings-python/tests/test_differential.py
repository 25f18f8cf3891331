"""Differential test against the official twilio-python 9.13.0 RequestValidator.

Thousands of seeded random webhooks: URLs with ports, queries and escapes; Twilio-like params with
duplicates, blanks, ``+``, ``%`` and non-ASCII text in dict / werkzeug MultiDict / Django QueryDict;
JSON bodies with bodySHA256; both algorithms; valid, port-toggled and tampered signatures. The drop-in
must give twilio-python's answer on every ordinary URL. Every divergence must be explained by one of
the documented contract choices, and is counted, never skipped.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
import warnings
from collections import Counter
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest
import twilio_signature as ts
from django.http import QueryDict
from twilio import request_validator as official
from werkzeug.datastructures import MultiDict

SEED = 20261123
CASES = 4000

NAMES = [
    "AccountSid",
    "ApiVersion",
    "Body",
    "From",
    "FromCity",
    "FromCountry",
    "FromState",
    "FromZip",
    "MessageSid",
    "NumMedia",
    "NumSegments",
    "SmsMessageSid",
    "SmsSid",
    "SmsStatus",
    "To",
    "ToCity",
    "ToCountry",
    "ToState",
    "ToZip",
    "MediaUrl0",
    "Digits",
    "CallSid",
    "Caller",
    "a",
    "A",
    "b",
    "é",
    "名前",
    "x y",
    "a+b",
    "100%",
    "😀",
]
VALUES = [
    "",
    " ",
    "+",
    "+14158675309",
    "%",
    "%2B",
    "100%",
    "a b",
    "a+b",
    "hello world",
    "ü",
    "日本語",
    "😀 ok",
    "CA1234567890ABCDE",
    "1",
    "01",
    "Hi!\r\nBye",
    "&=?#",
    "NFD é",
    "x" * 50,
]
HOSTS_ORDINARY = ["example.com", "mycompany.com", "127.0.0.1", "api.sub.example.co.uk", "EXAMPLE.com"]
PATHS = ["", "/", "/sms", "/a/b/c/", "/path%20with%2Fescapes", "/%C3%BCml", "/p;x", "/twilio/voice.php"]


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + "ü日+% ") for _ in range(rng.randint(0, 8)))


def random_url(rng: random.Random, body_hash: str | None) -> str:
    roll = rng.random()
    scheme = rng.choice(["https", "http"])
    host = rng.choice(HOSTS_ORDINARY)
    if roll < 0.04:
        scheme = scheme.upper()
    elif roll < 0.08:
        host = "user:pass@" + host
    elif roll < 0.11:
        host = rng.choice(["[::1]", "[2001:db8::7]"])
    port = rng.choice(["", "", "", ":443", ":80", ":8080", f":{rng.randint(1, 65535)}"])
    path = rng.choice(PATHS)
    query_pairs = [(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randint(0, 3))]
    query = urlencode(query_pairs) if rng.random() < 0.7 else "&".join(f"{n}={v}" for n, v in query_pairs)
    if body_hash is not None:
        query = (query + "&" if query else "") + ("bodySHA256=" + body_hash)
    if query:
        path = (path or "/") + "?" + query
    elif rng.random() < 0.03:
        path = (path or "/") + "?"  # a bare "?"
    return f"{scheme}://{host}{port}{path}"


def random_params(rng: random.Random) -> list[tuple[str, str]]:
    pairs = [(rng.choice(NAMES), rng.choice([*VALUES, random_text(rng)])) for _ in range(rng.randint(0, 25))]
    if pairs and rng.random() < 0.3:
        pairs.append(rng.choice(pairs))  # an exact duplicate pair
    return pairs


def container(kind: str, pairs: list[tuple[str, str]]) -> Any:
    if kind == "dict":
        return dict(pairs)
    if kind == "multidict":
        return MultiDict(pairs)
    query = QueryDict("", mutable=True)
    for name, value in pairs:
        query.appendlist(name, value)
    return query


def reasons(url: str, params: Any, ours: Any, theirs: Any) -> set[str]:
    """The documented contract choices that could make the drop-in differ on this request."""
    found = set()
    scheme, _, rest = url.partition("://")
    authority = rest.split("/")[0].split("?")[0]
    if scheme != scheme.lower():
        found.add("scheme not lower-cased")
    if "@" in authority:
        found.add("credentials dropped")
    if "[" in authority:
        found.add("IPv6 port toggle")
    if url.endswith("?"):
        found.add("bare ? kept")
    if urlparse(url).geturl() != url:
        found.add("URL not re-serialised (urlparse drops CR/LF/tab, a bare ? or ;)")
    if "bodySHA256=&" in url or url.endswith("bodySHA256="):
        found.add("empty bodySHA256 checked")
    if isinstance(params, str) and ours is False and theirs == "raises TypeError":
        found.add("str body without bodySHA256 is invalid (twilio-python raises TypeError)")
    return found


def run(fn: Any, *args: Any) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ts.UncheckedBodyWarning)
            return fn(*args)
    except Exception as error:  # the official SDK raises on some inputs: compare the outcome
        return f"raises {type(error).__name__}"


def toggle_port(url: str) -> str:
    parsed = urlparse(url)
    return official.remove_port(parsed) if parsed.port else official.add_port(parsed)


def make_case(rng: random.Random) -> tuple[str, Any, str, str | None, str]:
    token = rng.choice(["12345", "auth-token-" + random_text(rng), "ü-token"])
    algorithm = rng.choice([None, "HMAC_SHA1", "HMAC_SHA256", "hmac_sha256"])
    signer = official.RequestValidator(token)
    json_body = rng.random() < 0.25
    if json_body:
        body = json.dumps(
            {"Body": rng.choice(VALUES), "n": rng.randint(0, 9)}, ensure_ascii=rng.random() < 0.5
        )
        digest = hashlib.sha256(body.encode()).hexdigest()
        url = random_url(rng, digest if rng.random() < 0.9 else "")
        params: Any = body
        sign_params: Any = {}
    else:
        url = random_url(rng, None)
        pairs = random_params(rng)
        kind = rng.choice(["dict", "multidict", "querydict"])
        params = container(kind, pairs)
        sign_params = params
    signed_url = url if rng.random() < 0.7 else run(toggle_port, url)
    if signed_url.startswith("raises"):
        signed_url = url
    signature = signer.compute_signature(signed_url, sign_params, algorithm)
    tamper_kind = "valid"
    tamper = rng.random()
    if tamper < 0.1:
        tamper_kind, signature = (
            "signature flipped",
            signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:],
        )
    elif tamper < 0.2 and json_body:
        tamper_kind, params = "body altered", params.replace("}", ', "x": 1}')
    elif tamper < 0.2 and not json_body and pairs:
        name, value = pairs[0]
        params = container(kind, [*pairs, (name, value + "!")])
        tamper_kind = "param added"
    elif tamper < 0.25:
        tamper_kind, token = "wrong token", token + "x"
    elif tamper < 0.3:
        tamper_kind, url = "url altered", url.replace("://", "://www.", 1)
    return token, params, signature, algorithm, url + "\0" + tamper_kind


def test_drop_in_gives_twilio_pythons_answer_except_documented_choices() -> None:
    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    divergences: Counter[str] = Counter()
    for _ in range(CASES):
        token, params, signature, algorithm, tagged = make_case(rng)
        url, kind = tagged.split("\0")
        ours = run(ts.RequestValidator(token).validate, url, params, signature, algorithm)
        theirs = run(official.RequestValidator(token).validate, url, params, signature, algorithm)
        outcomes[f"{kind}: {ours}"] += 1
        if ours == theirs:
            continue
        why = reasons(url, params, ours, theirs)
        assert why, f"undocumented divergence: ours={ours} theirs={theirs} url={url!r} params={params!r}"
        divergences[" + ".join(sorted(why))] += 1
    print("\noutcomes:", dict(outcomes), "\ndivergences:", dict(divergences))
    assert outcomes["valid: True"] > CASES // 3, "too few valid cases: the generator is broken"
    assert (
        sum(v for k, v in outcomes.items() if not k.startswith("valid") and k.endswith("False")) > CASES // 10
    )
    assert sum(divergences.values()) < CASES // 5


@pytest.mark.parametrize("seed", range(300))
def test_compute_signature_matches_twilio_python(seed: int) -> None:
    rng = random.Random(seed)
    token = random_text(rng) or "t"
    url = random_url(rng, None if rng.random() < 0.8 else "abc")
    params = container(rng.choice(["dict", "multidict", "querydict"]), random_params(rng))
    algorithm = rng.choice([None, "HMAC_SHA1", "HMAC_SHA256", "Hmac_Sha256"])
    ours = ts.RequestValidator(token).compute_signature(url, params, algorithm)
    assert ours == official.RequestValidator(token).compute_signature(url, params, algorithm)


@pytest.mark.parametrize(
    "header", [None, "", "key=k1,algorithm=HMAC_SHA256", "algorithm=", " algorithm = x ", "garbage", "a=b,,"]
)
def test_get_signature_algorithm_matches(header: str | None) -> None:
    assert ts.get_signature_algorithm(header) == official.get_signature_algorithm(header)


def test_compute_hash_and_unsupported_algorithm_match() -> None:
    ours, theirs = ts.RequestValidator("12345"), official.RequestValidator("12345")
    for body in ["", "{}", '{"a": "ü"}']:
        assert ours.compute_hash(body) == theirs.compute_hash(body)
    assert ours.validate("https://e.com/", {}, "x", "HMAC_MD5") is False
    with pytest.raises(ValueError, match="Unsupported"):
        ours.compute_signature("https://e.com/", {}, "HMAC_MD5")


def test_unchecked_body_path_warns_and_keeps_twilio_pythons_answer() -> None:
    url = "https://example.com/hook?bodySHA256=" + "0" * 64
    signature = official.RequestValidator("12345").compute_signature(url, {})
    with pytest.warns(ts.UncheckedBodyWarning):
        assert ts.RequestValidator("12345").validate(url, {}, signature) is True
    with pytest.warns(ts.UncheckedBodyWarning):
        assert ts.RequestValidator("12345").validate(url, {}, signature[::-1]) is False
    # With the raw body the hash is checked and this body does not match.
    assert ts.RequestValidator("12345").validate(url, "{}", signature) is False
