"""A Flask app whose /sms webhook only answers requests signed by Twilio.

    TWILIO_AUTH_TOKEN=... python examples/flask_app.py --port 5000 [--base-url https://example.com]

Twilio's signed POST gets a TwiML reply (200); an unsigned request 400, a forged one 403.
"""

from __future__ import annotations

import argparse
from xml.sax.saxutils import escape

from flask import Flask, Response, g, request
from twilio_signature.flask import validate_twilio_request


def create_app(base_url: str | None = None, trust_proxy: bool = False) -> Flask:
    app = Flask(__name__)

    @app.post("/sms")
    @validate_twilio_request(base_url=base_url, trust_proxy=trust_proxy)
    def sms() -> Response:
        sender = request.form.get("From", "unknown")
        verified = g.twilio_verified
        reply = f"Hello {sender}, your {verified.algorithm} signature checked out."
        twiml = f"<Response><Message>{escape(reply)}</Message></Response>"
        return Response(twiml, mimetype="application/xml")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--base-url", help="the public URL prefix Twilio calls, if not this server")
    parser.add_argument("--trust-proxy", action="store_true", help="believe X-Forwarded-Proto/Host headers")
    args = parser.parse_args()
    create_app(args.base_url, args.trust_proxy).run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
