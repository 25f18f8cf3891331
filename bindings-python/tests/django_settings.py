"""Django settings for the tests (QueryDict in the differential test, the Django app test)."""

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_app"
USE_TZ = True
# i18n_patterns with prefix_default_language=False (django_app): /twilio/sms and /fr/twilio/sms reach
# one view, which the middleware must guard either way (LocaleMiddleware activates "fr" from the path).
USE_I18N = True
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "French")]
MIDDLEWARE = [
    "django.middleware.locale.LocaleMiddleware",
    "twilio_signature.django.TwilioSignatureMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
TWILIO_AUTH_TOKEN = "django-token"
TWILIO_WEBHOOK_PATHS = ["/mw/", "/twilio/"]
# ATOMIC_REQUESTS: the middleware's retry path runs views in the transaction Django would
# (tests/test_hardening.py).
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:", "ATOMIC_REQUESTS": True}}
