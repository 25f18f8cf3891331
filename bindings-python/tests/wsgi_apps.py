"""The test apps as WSGI callables for gunicorn (``gunicorn wsgi_apps:flask_application``), so the
body-limit tests can measure a production server's worker process."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")
django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from test_hostile import flask_app  # noqa: E402

flask_application = flask_app()
django_application = WSGIHandler()
