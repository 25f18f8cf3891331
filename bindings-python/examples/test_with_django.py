"""Testing your own Django webhook with ``twilio_signature.testing``:
``TWILIO_AUTH_TOKEN=test-token python examples/test_with_django.py`` (or under pytest)."""

from __future__ import annotations

import os

os.environ.setdefault("TWILIO_AUTH_TOKEN", "test-token")

import django_app
from django.test import Client
from twilio_signature.testing import post_signed


def test_signed_sms_gets_twiml() -> None:
    django_app.configure()
    client = Client()
    token = os.environ["TWILIO_AUTH_TOKEN"]
    response = post_signed(client, "/sms", {"From": "+14155550100", "Body": "hi"}, token=token)
    assert response.status_code == 200, response.content
    assert b"Hello +14155550100" in response.content
    assert post_signed(client, "/sms", {"From": "+14155550100"}, token="other").status_code == 403


if __name__ == "__main__":
    test_signed_sms_gets_twiml()
    print("ok")
