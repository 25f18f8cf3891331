"""Issue 11, items 6 and 7 and the Verified repr: the extension and the drop-in under hostile input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from twilio.request_validator import RequestValidator as Official
from twilio_signature import RequestValidator, TooManyParamsError, Validator
from werkzeug.datastructures import MultiDict

LYING_LEN = """
from twilio_signature import Validator

class Lying:
    def __init__(self, claimed, items):
        self.claimed, self.items = claimed, items
    def __len__(self):
        return self.claimed
    def __iter__(self):
        return iter(self.items)

validator = Validator("token")
url = "https://h.com/sms"
pairs = [("a", "b"), ("c", "d")]
signature = validator.sign_params(url, pairs)
outcomes = []
for claimed in (2**40, 2**62, 2**63 - 1, 0, 1):
    for call in (
        lambda: validator.verify_params(url, Lying(claimed, pairs), signature),
        lambda: validator.sign_params(url, Lying(claimed, pairs)),
    ):
        try:
            result = call()
            outcomes.append(type(result).__name__)
        except (TypeError, ValueError) as error:
            outcomes.append(type(error).__name__)
print(sorted(set(outcomes)))
"""


def test_lying_len_never_sizes_an_allocation() -> None:
    """An object claiming 2**40 or 2**62 items used to abort the interpreter or raise PanicException:
    run in a child so an abort is a clean failure here."""
    child = subprocess.run([sys.executable, "-c", LYING_LEN], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr[-2000:]
    assert "Panic" not in child.stderr
    # __len__ is only a hint: the two real pairs are verified and signed whatever it claims.
    assert child.stdout.strip() == "['Verified', 'str']"


def test_len_that_raises_or_is_negative_is_a_type_or_value_error() -> None:
    class Negative:
        def __len__(self) -> int:
            return -1

        def __iter__(self) -> Iterator[tuple[str, str]]:
            return iter([("a", "b")])

    class Huge:
        def __len__(self) -> int:
            return 2**64  # OverflowError from len()

        def __iter__(self) -> Iterator[tuple[str, str]]:
            return iter([("a", "b")])

    validator = Validator("token")
    signature = validator.sign_params("https://h.com/", [("a", "b")])
    for params in (Negative(), Huge()):
        try:
            validator.verify_params("https://h.com/", params, signature)
        except (TypeError, ValueError):
            pass


def test_endless_iterable_is_refused_at_max_params_not_drained() -> None:
    def endless() -> Iterator[tuple[str, str]]:
        n = 0
        while True:
            n += 1
            yield ("a", str(n))

    validator = Validator("token", max_params=1000)
    with pytest.raises(TooManyParamsError):
        validator.verify_params("https://h.com/", endless(), "x" * 28)
    with pytest.raises(TooManyParamsError):
        validator.sign_params("https://h.com/", endless())
    with pytest.raises(TooManyParamsError):
        validator.verify_params("https://h.com/", {str(i): "v" for i in range(1001)}, "x" * 28)


ORACLE_URL = "https://h.com/sms"
# URLs Twilio never requested when it signed ORACLE_URL; the native path refuses each.
NOT_SIGNED = ["https://h.com/sms?", "HTTPS://h.com/sms", "https://h.com/sms#"]


@pytest.mark.parametrize("copies", [1, 10_001])
def test_padding_with_duplicate_pairs_never_changes_which_urls_are_accepted(copies: int) -> None:
    params = MultiDict([("a", "b")] * copies)
    signature = Official("token").compute_signature(ORACLE_URL, {"a": "b"})
    ours = RequestValidator("token")
    # Where twilio-python is right (the URL as signed), we agree with it, padded or not.
    assert Official("token").validate(ORACLE_URL, params, signature)
    assert ours.validate(ORACLE_URL, params, signature)
    for url in NOT_SIGNED:
        assert not Validator("token").is_valid(url, b"a=b", signature)
        assert not ours.validate(url, params, signature), url
    assert ours.compute_signature(ORACLE_URL, params) == signature


def test_many_distinct_pairs_stay_on_the_native_path_and_agree_with_twilio_python() -> None:
    params = MultiDict([(f"p{i}", str(i)) for i in range(10_001)])
    signature = Official("token").compute_signature(ORACLE_URL, params)
    ours = RequestValidator("token")
    assert ours.validate(ORACLE_URL, params, signature)
    assert ours.compute_signature(ORACLE_URL, params) == signature
    for url in NOT_SIGNED:
        assert not ours.validate(url, params, signature)


def test_verified_repr_shows_python_values() -> None:
    validator = Validator({"KS1": "secret-one", "K'2": "secret-two"})
    url = "https://h.com/sms"
    settings = "key=KS1,algorithm=HMAC_SHA256"
    verified = validator.verify(url, b"", validator.sign(url, b"", settings), settings)
    expected = "Verified(secret_index=0, key_id='KS1', candidate='as_given', algorithm='HMAC_SHA256')"
    assert repr(verified) == expected
    plain = Validator("token")
    verified = plain.verify(url, b"", plain.sign(url, b""))
    assert "key_id=None" in repr(verified) and "Some(" not in repr(verified)
    odd = validator.verify(url, b"", validator.sign(url, b"", "key=K'2"), "key=K'2")
    assert 'key_id="K\'2"' in repr(odd)


def test_examples_of_the_testing_helper_run() -> None:
    """examples/test_with_{flask,django,fastapi}.py, each as a user would run it."""
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "examples"
    for name in ("flask", "django", "fastapi"):
        child = subprocess.run(
            [sys.executable, str(examples / f"test_with_{name}.py")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=examples,
        )
        assert child.returncode == 0 and child.stdout.strip() == "ok", textwrap.shorten(child.stderr, 2000)


def test_testing_helper_signs_json_and_sharedkey_webhooks_for_each_client() -> None:
    """post_signed with json= (bodySHA256 added to the URL) and HMAC_SHA256, through Flask's and
    Starlette's test clients; a wrong token is refused by the same routes."""
    from typing import Any

    import flask
    from fastapi import Depends, FastAPI
    from starlette.testclient import TestClient
    from twilio_signature import Verified
    from twilio_signature.fastapi import TwilioSignature
    from twilio_signature.flask import validate_twilio_request
    from twilio_signature.testing import post_signed, signed_request

    app = flask.Flask("testing_helper")

    @app.post("/events")
    @validate_twilio_request(token="tok")
    def events() -> dict[str, Any]:
        return {"algorithm": flask.g.twilio_verified.algorithm, "event": flask.request.get_json()["event"]}

    api = FastAPI()
    guard = TwilioSignature(token="tok")

    async def events_api(verified: Verified = Depends(guard)) -> dict[str, Any]:  # noqa: B008
        return {"algorithm": verified.algorithm}

    api.post("/events")(events_api)

    for client in (app.test_client(), TestClient(api)):
        for algorithm in ("HMAC_SHA1", "HMAC_SHA256"):
            response = post_signed(client, "/events", json={"event": "x"}, token="tok", algorithm=algorithm)
            assert response.status_code == 200, response.text
            assert json.loads(response.text)["algorithm"] == algorithm
        assert post_signed(client, "/events", json={"event": "x"}, token="bad").status_code == 403

    signed = signed_request("https://example.com/sms", {"From": "+1", "Body": "a b"}, token="tok")
    assert signed.body == b"From=%2B1&Body=a+b" and signed.path == "/sms"
    assert Validator("tok").is_valid(signed.url, signed.body, signed.headers["X-Twilio-Signature"])
