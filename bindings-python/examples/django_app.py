"""A one-file Django project whose /sms webhook only answers requests signed by Twilio.

    TWILIO_AUTH_TOKEN=... python examples/django_app.py --port 8000 [--base-url https://example.com]

Served by Django's own ``runserver`` (without the autoreloader). Twilio's signed POST gets a TwiML
reply (200); an unsigned request 400, a forged one 403, a body over 1 MiB 413.
"""

from __future__ import annotations

import argparse
import sys
from xml.sax.saxutils import escape

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from twilio_signature.django import validate_twilio_request


def configure(base_url: str | None = None) -> None:
    """Django settings for this one-file project (the token comes from ``TWILIO_AUTH_TOKEN``)."""
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="example-only",
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver", "[::1]"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        TWILIO_BASE_URL=base_url,
    )
    django.setup()


@validate_twilio_request
def sms(request: HttpRequest) -> HttpResponse:
    sender = request.POST.get("From", "unknown")
    reply = f"Hello {sender}, your {request.twilio_verified.algorithm} signature checked out."
    return HttpResponse(
        f"<Response><Message>{escape(reply)}</Message></Response>", content_type="application/xml"
    )


urlpatterns = [path("sms", sms)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    configure()
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "runserver", "--noreload", f"{args.host}:{args.port}"])


if __name__ == "__main__":
    main()
