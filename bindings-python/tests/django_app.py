"""URLconf of the Django test app: decorated views and a middleware-guarded one."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from twilio_signature.django import validate_twilio_request


@validate_twilio_request
def sms(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"ok {request.POST.get('From', '')}")


@validate_twilio_request(trusted_proxies=["127.0.0.1"])
def proxied(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def guarded_by_middleware(request: HttpRequest) -> HttpResponse:
    # No csrf_exempt: a POST reaches this view only because the middleware verified it.
    return HttpResponse("ok " + request.twilio_verified.algorithm)  # type: ignore[attr-defined]


urlpatterns = [
    path("sms", sms),
    path("proxied", proxied),
    path("mw/sms", guarded_by_middleware),
]
