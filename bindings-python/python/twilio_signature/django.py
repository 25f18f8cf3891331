"""Django: a view decorator and a middleware that refuse webhooks Twilio did not sign.

Decorator (the view is also marked ``csrf_exempt``: Twilio cannot send a CSRF token, and the signature
check is what protects the view)::

    from twilio_signature.django import validate_twilio_request

    @validate_twilio_request                      # or @validate_twilio_request(base_url=...)
    def sms(request): ...

Middleware, guarding every path under the prefixes of ``TWILIO_WEBHOOK_PATHS`` (list it *before*
``django.middleware.csrf.CsrfViewMiddleware``; verified requests skip the CSRF check)::

    MIDDLEWARE = ["twilio_signature.django.TwilioSignatureMiddleware", ...]
    TWILIO_WEBHOOK_PATHS = ["/twilio/"]
    TWILIO_BASE_URL = None            # optional, e.g. "https://example.com"
    TWILIO_TRUSTED_PROXIES = []       # optional, addresses whose X-Forwarded-Proto/Host are believed

The token is ``settings.TWILIO_AUTH_TOKEN`` or the environment variable of that name. Without
``X-Twilio-Signature`` the answer is 400, with a bad signature 403; on success
``request.twilio_verified`` holds the :class:`~twilio_signature.Verified` result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast, overload

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.encoding import escape_uri_path
from django.views.decorators.csrf import csrf_exempt

from twilio_signature._compat import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER
from twilio_signature._native import SignatureError
from twilio_signature._web import TOKEN_SETTING, Guard, status_for

__all__ = ["TwilioSignatureMiddleware", "validate_twilio_request"]

F = TypeVar("F", bound=Callable[..., Any])


def _raw_target(request: HttpRequest) -> str:
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = request.META.get("QUERY_STRING", "")
    path = escape_uri_path(request.path)
    return f"{path}?{query}" if query else path


def check(guard: Guard, request: HttpRequest) -> HttpResponse | None:
    """Verifies ``request``: None when Twilio signed it, else the 400/403 response to send."""
    validator = guard.validator(getattr(settings, TOKEN_SETTING, None))
    url = guard.public_url(
        scheme=request.scheme or "http",
        host=request.get_host(),
        target=_raw_target(request),
        prefix=request.META.get("SCRIPT_NAME", ""),
        remote_addr=request.META.get("REMOTE_ADDR"),
        header=request.headers.get,
    )
    try:
        verified = validator.verify(
            url,
            request.body,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(SIGNATURE_SETTINGS_HEADER),
        )
    except SignatureError as error:
        return HttpResponse(str(error), status=status_for(error), content_type="text/plain")
    request.twilio_verified = verified
    return None


@overload
def validate_twilio_request(view: F, /) -> F: ...
@overload
def validate_twilio_request(
    *,
    token: str | None = None,
    base_url: str | None = None,
    trusted_proxies: Iterable[str] | None = None,
    trust_proxy: bool = False,
) -> Callable[[F], F]: ...
def validate_twilio_request(
    view: F | None = None,
    /,
    *,
    token: str | None = None,
    base_url: str | None = None,
    trusted_proxies: Iterable[str] | None = None,
    trust_proxy: bool = False,
) -> F | Callable[[F], F]:
    """Refuse requests to the view that Twilio did not sign (400 unsigned, 403 badly signed)."""
    guard = Guard(token=token, base_url=base_url, trusted_proxies=trusted_proxies, trust_proxy=trust_proxy)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refused = check(guard, request)
            return refused if refused is not None else view(request, *args, **kwargs)

        return cast(F, csrf_exempt(guarded))

    return decorate(view) if view is not None else decorate


class TwilioSignatureMiddleware:
    """Verifies every request under ``settings.TWILIO_WEBHOOK_PATHS`` (path prefixes)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.paths = tuple(getattr(settings, "TWILIO_WEBHOOK_PATHS", ()))
        self.guard = Guard(
            base_url=getattr(settings, "TWILIO_BASE_URL", None),
            trusted_proxies=getattr(settings, "TWILIO_TRUSTED_PROXIES", None),
            trust_proxy=getattr(settings, "TWILIO_TRUST_PROXY", False),
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.paths and request.path.startswith(self.paths):
            refused = check(self.guard, request)
            if refused is not None:
                return refused
            # Twilio cannot send a CSRF token; the signature is this request's protection.
            request._dont_enforce_csrf_checks = True
        return self.get_response(request)
