"""explain through the extension on the cases users hit (an internal URL behind a proxy, a JSON webhook
whose URL lost its bodySHA256), the scratch bound on a body of ``&``, and the re-splitting property of
Twilio's signed string that SECURITY.md documents, shown with twilio-python as the oracle."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import twilio_signature as ts
from twilio.request_validator import RequestValidator as Official

TOKEN = "12345678901234567890123456789012"
PUBLIC = "https://example.com/sms"
FORM = "Body=Hello&From=%2B15551234567&To=%2B15005550006"


@pytest.mark.parametrize("internal", ["http://10.0.0.5:8080/sms", "http://127.0.0.1:5601/sms"])
def test_an_internal_url_behind_a_proxy_is_named_with_the_url_verified(internal: str) -> None:
    validator = ts.Validator(TOKEN)
    signature = validator.sign(PUBLIC, FORM)
    report = validator.explain(internal, FORM, signature)
    assert report.startswith("invalid: the signature does not match the request.")
    assert "likely cause: the URL verified looks internal" in report
    assert "Twilio signs the public URL configured in the console" in report
    assert f"url verified: {internal}\n" in report
    assert "configure the base URL" in report
    assert "no common mistake" not in report
    # The token is the last resort, after the fix.
    assert report.index("Auth Token") > report.index("fix:")
    # And the verdict is verify's.
    with pytest.raises(ts.SignatureMismatchError):
        validator.verify(internal, FORM, signature)


def test_a_public_url_that_matches_nothing_keeps_the_token_advice() -> None:
    signature = ts.Validator("another account's token").sign(PUBLIC, FORM)
    report = ts.Validator(TOKEN).explain(PUBLIC, FORM, signature)
    assert "no common mistake explains it" in report and "Auth Token" in report
    assert "internal" not in report


def test_a_json_webhook_whose_url_lost_its_body_hash_gets_one_cause() -> None:
    body = '{"type":"com.twilio.messaging.inbound-message.received","data":{"body":"a&b"}}'
    signed_url = f"https://example.com/events?bodySHA256={ts.body_sha256(body)}"
    validator = ts.Validator(TOKEN)
    signature = validator.sign(signed_url, body)
    report = validator.explain("https://example.com/events", body, signature)
    assert report.count("likely cause") == 1, report
    assert "lost its bodySHA256" in report and "no common mistake" not in report
    assert "query string included" in report


def test_a_body_of_ampersands_is_processed_without_a_large_allocation() -> None:
    """64 MiB of ``&`` with max_params raised: the scratch was sized at 32 bytes per ``&`` (2 GiB); it is
    sized by non-empty segments now (none). Run in a subprocess whose address space is capped at what it
    already uses plus 256 MiB, so a 2 GiB allocation aborts it."""
    script = textwrap.dedent(
        """
        import resource
        import twilio_signature as ts

        body = b"&" * (64 << 20)
        validator = ts.Validator("12345678901234567890123456789012", max_params=100_000_000)
        signature = validator.sign("https://example.com/sms", b"")
        with open("/proc/self/status") as status:
            vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
        verified = validator.verify("https://example.com/sms", body, signature)
        assert verified.candidate == "as_given"
        report = validator.explain("http://10.0.0.5:8080/sms", body, signature)
        assert "looks internal" in report
        # The cap is real: a 1 GiB allocation in this process fails.
        try:
            bytearray(1 << 30)
        except MemoryError:
            print("capped ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "capped ok"


def test_a_captured_request_re_split_verifies_in_twilio_python_and_here() -> None:
    """SECURITY.md, "Re-splitting": the signed string has no separators, so a genuine request's bytes can
    be re-split into other parameters under the same signature. twilio-python accepts it; so do we (it
    is Twilio's scheme), and the replay key is the same, which is what makes storing keys catch it."""
    genuine = {"AccountSid": "AC123", "Body": "hiFrom+15550001111FromA", "From": "+15559998888"}
    re_split = {"AccountSid": "AC123", "Body": "hi", "From": "+15550001111", "FromA": "From+15559998888"}
    official = Official(TOKEN)
    signature = official.compute_signature(PUBLIC, genuine)
    assert official.validate(PUBLIC, genuine, signature)
    assert official.validate(PUBLIC, re_split, signature), "twilio-python accepts the re-split request"
    assert ts.RequestValidator(TOKEN).validate(PUBLIC, re_split, signature)
    validator = ts.Validator(TOKEN)
    first = validator.verify_params(PUBLIC, genuine, signature)
    replayed = validator.verify_params(PUBLIC, re_split, signature)
    assert first.replay_key == replayed.replay_key
