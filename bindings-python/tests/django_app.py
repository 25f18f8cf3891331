"""URLconf of the Django test app: decorated views and a middleware-guarded one."""

from __future__ import annotations

from collections import Counter

from django.conf.urls.i18n import i18n_patterns
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from twilio_signature.django import validate_twilio_request
from twilio_signature.idempotency import Idempotency, MemoryStore

RUNS: Counter[str] = Counter()
"""View runs by name, for tests that a refused request never reached its view."""


@validate_twilio_request
def sms(request: HttpRequest) -> HttpResponse:
    RUNS["sms"] += 1
    return HttpResponse(f"ok {request.POST.get('From', '')}")


@validate_twilio_request(trusted_proxies=["127.0.0.1"])
def proxied(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def guarded_by_middleware(request: HttpRequest) -> HttpResponse:
    # No csrf_exempt: a POST reaches this view only because the middleware verified it.
    RUNS["mw/sms"] += 1
    return HttpResponse("ok " + request.twilio_verified.algorithm)  # type: ignore[attr-defined]


@csrf_exempt
def webhook_view(request: HttpRequest) -> HttpResponse:
    """Guarded only by the middleware (TWILIO_WEBHOOK_PATHS = [..., "/twilio/"]) and csrf_exempt, as
    many webhook views are: nothing else stands between it and an unsigned request."""
    from django.db import connection

    RUNS["webhook_view"] += 1
    if getattr(request, "twilio_verified", None) is None:
        return HttpResponse("ran UNVERIFIED")
    atomic = connection.in_atomic_block
    return HttpResponse(f"ran verified {request.POST.get('From', '')} atomic={atomic} {RUNS['webhook_view']}")


REDIRECT_RETRIES = Idempotency(MemoryStore(), wait=2.0)
"""The driver of the redirect view; tests/test_idempotency_hardening.py gives it a Redis store."""


@validate_twilio_request(
    token="12345678901234567890123456789012",
    base_url="https://hooks.example.com",
    idempotency=REDIRECT_RETRIES,
)
def redirect(request: HttpRequest) -> HttpResponse:
    """A 302 with two cookies: a replay must keep the Location and each Set-Cookie."""
    RUNS["django-redirect"] += 1
    response = HttpResponseRedirect("/next?step=2")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("redirect", redirect),
    path("sms", sms),
    path("proxied", proxied),
    path("mw/sms", guarded_by_middleware),
    # The same view again, under a pattern outside every prefix: the view is guarded, not the path.
    re_path(r"^hooks/+status$", webhook_view),
    *i18n_patterns(path("twilio/sms", webhook_view), prefix_default_language=False),
]
