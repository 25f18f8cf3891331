"""FastAPI / Starlette: a dependency that refuses webhooks Twilio did not sign.

::

    from fastapi import Depends, FastAPI
    from twilio_signature import Verified
    from twilio_signature.fastapi import TwilioSignature

    app = FastAPI()
    twilio = TwilioSignature()                      # or TwilioSignature(base_url=..., trusted_proxies=[...])

    @app.post("/sms")
    async def sms(verified: Verified = Depends(twilio)): ...

Plain Starlette: ``await twilio(request)`` inside the endpoint. The token is the ``token`` argument or
the environment variable ``TWILIO_AUTH_TOKEN``. The raw body is verified (form and JSON webhooks);
Starlette caches it, so ``await request.form()`` still works. Without ``X-Twilio-Signature`` the
answer is 400, with a bad signature 403 (an ``HTTPException``).
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of `__call__` at runtime.
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request

from twilio_signature._compat import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER
from twilio_signature._native import SignatureError, Verified
from twilio_signature._web import Guard, status_for

__all__ = ["TwilioSignature"]


def _raw_target(request: Request) -> str:
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


class TwilioSignature:
    """A FastAPI dependency (or Starlette helper) returning the :class:`~twilio_signature.Verified`."""

    def __init__(
        self,
        *,
        token: str | None = None,
        base_url: str | None = None,
        trusted_proxies: Iterable[str] | None = None,
        trust_proxy: bool = False,
    ) -> None:
        self.guard = Guard(
            token=token, base_url=base_url, trusted_proxies=trusted_proxies, trust_proxy=trust_proxy
        )

    async def __call__(self, request: Request) -> Verified:
        validator = self.guard.validator(None)
        client = request.client
        url = self.guard.public_url(
            scheme=request.url.scheme,
            host=request.headers.get("host") or request.url.netloc,
            target=_raw_target(request),
            prefix=request.scope.get("root_path", ""),
            remote_addr=client.host if client else None,
            header=request.headers.get,
        )
        body = await request.body()
        try:
            return validator.verify(
                url,
                body,
                request.headers.get(SIGNATURE_HEADER),
                request.headers.get(SIGNATURE_SETTINGS_HEADER),
            )
        except SignatureError as error:
            raise HTTPException(status_code=status_for(error), detail=str(error)) from None
