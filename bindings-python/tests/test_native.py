"""The native Validator: results, errors, keys, threads, hostile input (exceptions, never crashes)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import twilio_signature as ts
from conftest import load_vectors, raw_body
from twilio.request_validator import RequestValidator as Official

URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
BODY = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212"
SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
SHA256 = "key=k2,algorithm=HMAC_SHA256"


def test_verify_reports_secret_candidate_algorithm_and_replay_key() -> None:
    validator = ts.Validator(["old-token", "12345"])
    verified = validator.verify(URL, BODY, SIGNATURE)
    assert (verified.secret_index, verified.key_id) == (1, None)
    assert (verified.candidate, verified.algorithm) == ("as_given", "HMAC_SHA1")
    assert verified.replay_key == validator.verify(URL.encode(), BODY.encode(), SIGNATURE.encode()).replay_key
    toggled = validator.verify("https://mycompany.com:443/myapp.php?foo=1&bar=2", BODY, SIGNATURE)
    assert toggled.candidate == "port_toggled"
    assert toggled.replay_key == verified.replay_key  # same MAC, same request
    other = ts.Validator("12345").sign(URL, BODY + "&X=1")
    assert validator.verify(URL, BODY + "&X=1", other).replay_key != verified.replay_key


def test_key_ids_select_the_shared_key() -> None:
    validator = ts.Validator({"k1": "secret-one", "k2": "secret-two"})
    signature = ts.Validator({"k2": "secret-two"}).sign(URL, BODY, SHA256)
    assert len(signature) == 44
    verified = validator.verify(URL, BODY, signature, SHA256)
    assert (verified.secret_index, verified.key_id, verified.algorithm) == (1, "k2", "HMAC_SHA256")
    with pytest.raises(ts.SignatureMismatchError):
        validator.verify(URL, BODY, signature, "key=k1,algorithm=HMAC_SHA256")
    with pytest.raises(ts.NoEligibleSecretError):
        validator.sign(URL, BODY, "key=k3,algorithm=HMAC_SHA256")
    assert validator.key_ids == ["k1", "k2"]


def test_sign_agrees_with_the_official_sdk() -> None:
    params = dict(pair.split("=") for pair in BODY.replace("%2B", "+").split("&"))
    assert ts.Validator("12345").sign(URL, BODY) == Official("12345").compute_signature(URL, params)
    assert ts.Validator("12345").sign_params(URL, list(params.items())) == SIGNATURE


@pytest.mark.parametrize(
    ("signature", "settings", "error"),
    [
        (None, None, ts.MissingSignatureError),
        ("short", None, ts.MalformedSignatureError),
        (SIGNATURE, "algorithm=HMAC_MD5", ts.UnsupportedAlgorithmError),
        (SIGNATURE, "no pairs here", ts.MalformedSettingsError),
        (ts.Validator("other").sign(URL, BODY), None, ts.SignatureMismatchError),
        ("é" * 28, None, ts.MalformedSignatureError),
        ("\x00" * 28, None, ts.MalformedSignatureError),
    ],
)
def test_each_error_is_its_own_class(signature: Any, settings: Any, error: type[Exception]) -> None:
    validator = ts.Validator("12345")
    with pytest.raises(error) as raised:
        validator.verify(URL, BODY, signature, settings)
    assert isinstance(raised.value, ts.SignatureError) and isinstance(raised.value, ValueError)
    assert "12345" not in str(raised.value)
    assert validator.is_valid(URL, BODY, signature, settings) is False


def test_error_groups() -> None:
    assert issubclass(ts.BodyHashMismatchError, ts.SignatureMismatchError)
    for cls in (ts.MissingSignatureError, ts.MalformedBodyError, ts.TooManyParamsError, ts.BodyRequiredError):
        assert issubclass(cls, ts.MalformedRequestError) and not issubclass(cls, ts.SignatureMismatchError)


def test_body_hash_mismatch_and_body_required() -> None:
    url = "https://example.com/hook?bodySHA256=" + ts.body_sha256(b'{"a":1}')
    validator = ts.Validator("12345")
    signature = validator.sign(url, b'{"a":1}')
    assert validator.verify(url, b'{"a":1}', signature).algorithm == "HMAC_SHA1"
    with pytest.raises(ts.BodyHashMismatchError):
        validator.verify(url, b'{"a":2}', signature)
    with pytest.raises(ts.BodyRequiredError):
        validator.verify_params(url, [], signature)


def test_explain_names_the_mistake() -> None:
    report = ts.Validator("12345").explain(URL.replace("https", "http"), BODY, SIGNATURE)
    assert report.startswith("invalid") and "http vs https" in report
    assert ts.Validator("12345").explain(URL, BODY, SIGNATURE).startswith("valid")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((123,), "secrets must be"),
        (([],), "at least one secret"),
        (("",), "must not be empty"),
        (({"k" * 65: "s"},), "key id"),
        (({1: "s"},), "key ids must be str"),
        ((["ok", 3],), "a secret must be str or bytes"),
    ],
)
def test_bad_constructor_arguments(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        ts.Validator(*args)
    with pytest.raises(ValueError):
        ts.Validator("x", max_params=0)


def test_params_as_a_plain_dict_or_as_pairs_give_the_same_answer() -> None:
    validator = ts.Validator("12345")
    pairs = [(name, value) for name, value in (p.split("=") for p in BODY.replace("%2B", "+").split("&"))]
    from_dict = validator.verify_params(URL, dict(pairs), SIGNATURE)
    assert from_dict.replay_key == validator.verify_params(URL, pairs, SIGNATURE).replay_key
    assert validator.sign_params(URL, dict(pairs)) == SIGNATURE
    with pytest.raises(ts.SignatureMismatchError):
        validator.verify_params(URL, {**dict(pairs), "Digits": "1235"}, SIGNATURE)


def test_is_valid_params_is_verify_params_as_a_bool() -> None:
    validator = ts.Validator("12345")
    pairs = [(name, value) for name, value in (p.split("=") for p in BODY.replace("%2B", "+").split("&"))]
    assert validator.is_valid_params(URL, dict(pairs), SIGNATURE) is True
    assert validator.is_valid_params(URL, pairs, SIGNATURE) is True
    assert validator.is_valid_params(URL, {**dict(pairs), "Digits": "1235"}, SIGNATURE) is False
    assert validator.is_valid_params(URL, pairs, None) is False
    # A URL with bodySHA256 cannot be verified from params (verify_params raises BodyRequiredError).
    hashed = URL + "&bodySHA256=" + ts.body_sha256("{}")
    assert validator.is_valid_params(hashed, pairs, SIGNATURE) is False
    with pytest.raises(ts.BodyRequiredError):
        validator.verify_params(hashed, pairs, SIGNATURE)
    for wrong in ({"a": 1}, [("a",)], "a=1"):
        with pytest.raises(TypeError):
            validator.is_valid_params(URL, wrong, SIGNATURE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda v: v.verify(123, BODY, SIGNATURE),
        lambda v: v.verify(URL, bytearray(b"x"), SIGNATURE),
        lambda v: v.verify(URL, None, SIGNATURE),
        lambda v: v.verify(URL, BODY, 42),
        lambda v: v.verify(URL, BODY, SIGNATURE, ["settings"]),
        lambda v: v.verify_params(URL, "a=1", SIGNATURE),
        lambda v: v.verify_params(URL, [("a", 1)], SIGNATURE),
        lambda v: v.verify_params(URL, [("a",)], SIGNATURE),
        lambda v: v.verify_params(URL, {"a": 1}, SIGNATURE),
        lambda v: v.verify_params(URL, {1: "a"}, SIGNATURE),
        lambda v: v.sign(URL, {"a": "1"}),
        lambda v: ts.RequestValidator(b"12345"),  # type: ignore[arg-type]
        lambda v: ts.RequestValidator("12345").validate(b"https://e.com", {}, SIGNATURE),
        lambda v: ts.RequestValidator("12345").validate(URL, ["a", "b"], SIGNATURE),
        lambda v: ts.RequestValidator("12345").validate(URL, {"a": 1}, SIGNATURE),
    ],
)
def test_wrong_types_raise_type_error(call: Any) -> None:
    with pytest.raises(TypeError):
        call(ts.Validator("12345"))


def test_hostile_bodies_and_urls_are_refused_cleanly() -> None:
    validator = ts.Validator("12345", max_params=100)
    with pytest.raises(ts.MalformedBodyError):
        validator.verify(URL, b"a=%FF%FE&b=\xff", SIGNATURE)
    with pytest.raises(ts.TooManyParamsError):
        validator.verify(URL, "&".join(f"p{i}=v" for i in range(101)), SIGNATURE)
    assert validator.is_valid(URL, "&".join(f"p{i}=v" for i in range(100)), SIGNATURE) is False
    assert validator.is_valid(URL, "&" * 100_000, SIGNATURE) is False  # empty segments are no params
    huge = b"Body=" + b"A" * (64 * 1024 * 1024)
    assert validator.is_valid(URL, huge, SIGNATURE) is False
    assert validator.sign(URL, huge) == ts.Validator("12345").sign(URL, huge)
    for url in [b"\xff\xfe://[[::", "", "://", "https://" + "a" * 100_000, "https://h:99999999/\x00"]:
        assert validator.is_valid(url, BODY, SIGNATURE) is False
        assert isinstance(validator.explain(url, BODY, SIGNATURE), str)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate is not text that was sent
        validator.verify("https://e.com/\ud800", BODY, SIGNATURE)


def test_every_byte_flip_of_an_accepted_vector_is_refused() -> None:
    """ring-style: tamper with each byte of the URL, the body and the signature."""
    vector = next(v for v in load_vectors() if v["expect"] and v["params"] and len(v["url"]) < 80)
    validator = ts.Validator(vector["secret"])
    url, body, signature = vector["url"].encode(), raw_body(vector).encode(), vector["signature"].encode()
    assert validator.is_valid(url, body, signature, vector["signature_settings"])
    for field in ("url", "body", "signature"):
        original = {"url": url, "body": body, "signature": signature}[field]
        for i in range(len(original)):
            flipped = original[:i] + bytes([original[i] ^ 0x01]) + original[i + 1 :]
            parts = {"url": url, "body": body, "signature": signature, field: flipped}
            assert not validator.is_valid(parts["url"], parts["body"], parts["signature"]), (field, i)


def test_validator_is_immutable_and_thread_safe() -> None:
    validator = ts.Validator("12345")
    with pytest.raises(AttributeError):
        validator.max_params = 5  # type: ignore[misc]
    big = "Body=" + "x" * 200_000
    signature = validator.sign(URL, big)
    results: list[bool] = []

    def work() -> None:
        for _ in range(20):
            results.append(validator.is_valid(URL, big, signature))
            results.append(not validator.is_valid(URL, big + "y", signature))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 160 and all(results)


def test_secrets_never_show() -> None:
    assert "12345" not in repr(ts.Validator("12345"))
    assert "12345" not in repr(ts.RequestValidator("12345"))
    assert "secret-two" not in repr(ts.Validator({"k2": "secret-two"}))


def test_validator_repr_shows_python_values() -> None:
    token = "0123456789abcdef0123456789abcdef"
    assert repr(ts.Validator({"KS1": token})) == "Validator(secrets=1, key_ids=['KS1'], max_params=10000)"
    assert repr(ts.Validator([token, "second"], max_params=5)) == (
        "Validator(secrets=2, key_ids=[None, None], max_params=5)"
    )
    expected = """Validator(secrets=1, key_ids=["it's"], max_params=10000)"""
    assert repr(ts.Validator({"it's": token})) == expected


@pytest.mark.parametrize("secret", ["\x0b", " \x0b ", "\x0c", "\t\n\x0b\x0c\r "])
def test_a_secret_of_vertical_tabs_and_other_ascii_whitespace_is_refused(secret: str) -> None:
    """The core's one usability rule (t, n, v, f, r and space count as blank); Python has none
    of its own, so this passes once the core counts the vertical tab."""
    for secrets in (secret, secret.encode(), [secret], {"KS1": secret}):
        with pytest.raises(ValueError, match="whitespace") as error:
            ts.Validator(secrets)  # type: ignore[arg-type]
        assert secret not in str(error.value)


def test_sign_and_explain_honour_max_params_past_the_core_stack_buffer() -> None:
    body = "&".join(f"p{i}=v" for i in range(2000)).encode()
    url = "https://example.com/bulk"
    validator = ts.Validator("k")
    signature = validator.sign(url, body)
    assert validator.is_valid(url, body, signature)
    assert "other scheme" in validator.explain("http://example.com/bulk", body, signature)
    small = ts.Validator("k", max_params=1000)
    with pytest.raises(ts.TooManyParamsError):
        small.sign(url, body)
