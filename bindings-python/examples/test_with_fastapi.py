"""Testing your own FastAPI webhook with ``twilio_signature.testing`` and Starlette's ``TestClient``:
``TWILIO_AUTH_TOKEN=test-token python examples/test_with_fastapi.py`` (or under pytest)."""

from __future__ import annotations

import os

os.environ.setdefault("TWILIO_AUTH_TOKEN", "test-token")

from fastapi_app import create_app
from starlette.testclient import TestClient
from twilio_signature.testing import post_signed


def test_signed_sms_and_voice_get_twiml() -> None:
    client = TestClient(create_app())
    token = os.environ["TWILIO_AUTH_TOKEN"]
    for path in ("/sms", "/voice"):
        response = post_signed(client, path, {"From": "+14155550100", "Body": "hi"}, token=token)
        assert response.status_code == 200, response.text
        assert "Hello +14155550100" in response.text
    assert post_signed(client, "/sms", {"From": "+14155550100"}, token="other").status_code == 403


if __name__ == "__main__":
    test_signed_sms_and_voice_get_twiml()
    print("ok")
