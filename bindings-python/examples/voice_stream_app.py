"""A FastAPI voice app with a Media Streams WebSocket whose handshake is verified, served by uvicorn.

    TWILIO_AUTH_TOKEN=... python examples/voice_stream_app.py --port 8000 [--base-url https://example.com]

``POST /voice`` (a signed webhook) answers TwiML that connects the call to the stream:
``<Connect><Stream url="wss://example.com/media"/></Connect>``. Twilio then opens ``/media``, signing
the handshake over that ``wss://`` URL; the same ``TwilioSignature`` dependency verifies it before
``accept()``: a forged handshake gets 403 and an unsigned one 400, never a 101. On the stream the app
answers the ``start`` event with a ``mark``.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations at runtime.

import argparse
import json
from typing import Annotated
from xml.sax.saxutils import quoteattr

import uvicorn
from fastapi import Depends, FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from twilio_signature import Verified
from twilio_signature.fastapi import TwilioSignature


def stream_url(request: Request, base_url: str | None) -> str:
    """The public ``wss://`` (``ws://`` for plain http) URL of ``/media``."""
    origin = (base_url or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")
    scheme, rest = origin.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + "/media"


def create_app(base_url: str | None = None) -> FastAPI:
    app = FastAPI()
    twilio = TwilioSignature(base_url=base_url)

    @app.post("/voice")
    async def voice(request: Request, verified: Annotated[Verified, Depends(twilio)]) -> Response:
        url = quoteattr(stream_url(request, base_url))
        twiml = f"<Response><Connect><Stream url={url}/></Connect></Response>"
        return Response(twiml, media_type="application/xml")

    @app.websocket("/media")
    async def media(websocket: WebSocket, verified: Annotated[Verified, Depends(twilio)]) -> None:
        await websocket.accept()  # reached only by a handshake Twilio signed
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                if message.get("event") == "start":
                    sid = message.get("streamSid", "")
                    await websocket.send_text(
                        json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "ready"}})
                    )
                elif message.get("event") == "stop":
                    break
        except WebSocketDisconnect:
            return
        await websocket.close()

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
