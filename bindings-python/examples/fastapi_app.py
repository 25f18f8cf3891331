"""A FastAPI app whose /sms webhook only answers requests signed by Twilio, served by uvicorn.

    TWILIO_AUTH_TOKEN=... python examples/fastapi_app.py --port 8000 [--base-url https://example.com]

``/sms`` reads the form itself; ``/voice`` declares ``Form()`` fields (FastAPI parses the form before
the dependency runs, so the parsed pairs are verified). Signed POSTs get TwiML (200); an unsigned
request 400, a forged one 403, a body over 1 MiB 413 (``TwilioBodyLimit`` bounds the ``Form()`` route
before FastAPI parses it).
"""

# No `from __future__ import annotations`: FastAPI reads the annotations at runtime.

import argparse
from typing import Annotated
from xml.sax.saxutils import escape

import uvicorn
from fastapi import Depends, FastAPI, Form, Request, Response
from twilio_signature import Verified
from twilio_signature.fastapi import TwilioBodyLimit, TwilioSignature


def twiml(text: str) -> Response:
    return Response(f"<Response><Message>{escape(text)}</Message></Response>", media_type="application/xml")


def create_app(base_url: str | None = None) -> FastAPI:
    app = FastAPI()
    app.add_middleware(TwilioBodyLimit, paths=["/sms", "/voice"])
    twilio = TwilioSignature(base_url=base_url)

    @app.post("/sms")
    async def sms(request: Request, verified: Annotated[Verified, Depends(twilio)]) -> Response:
        sender = (await request.form()).get("From", "unknown")
        return twiml(f"Hello {sender}, your {verified.algorithm} signature checked out.")

    @app.post("/voice")
    async def voice(From: Annotated[str, Form()], verified: Annotated[Verified, Depends(twilio)]) -> Response:
        return twiml(f"Hello {From}, your {verified.algorithm} signature checked out.")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--base-url", help="the public URL prefix Twilio calls, if not this server")
    args = parser.parse_args()
    uvicorn.run(create_app(args.base_url), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
