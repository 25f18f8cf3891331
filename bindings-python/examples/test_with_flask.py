"""Testing your own Flask webhook with ``twilio_signature.testing``: ``python examples/test_with_flask.py``
(or under pytest). No server, no hand-made signatures."""

from __future__ import annotations

from flask_app import create_app
from twilio_signature.testing import post_signed


def test_signed_sms_gets_twiml() -> None:
    client = create_app().test_client()
    client.application.config["TWILIO_AUTH_TOKEN"] = "test-token"
    response = post_signed(client, "/sms", {"From": "+14155550100", "Body": "hi"}, token="test-token")
    assert response.status_code == 200, response.text
    assert "Hello +14155550100" in response.text
    # The same request signed with another token is refused.
    assert post_signed(client, "/sms", {"From": "+14155550100"}, token="other").status_code == 403


if __name__ == "__main__":
    test_signed_sms_gets_twiml()
    print("ok")
