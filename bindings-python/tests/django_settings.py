"""Django settings for the tests (QueryDict in the differential test, the Django app test)."""

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_app"
USE_TZ = True
MIDDLEWARE = [
    "twilio_signature.django.TwilioSignatureMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
TWILIO_AUTH_TOKEN = "django-token"
TWILIO_WEBHOOK_PATHS = ["/mw/"]
