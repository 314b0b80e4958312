"""Django settings shared by every deployment; infrastructure choices live in infra.py."""

from __future__ import annotations

import os
from pathlib import Path

from ophydsite.logging_setup import logging_config

from .oas import OasSettings

BASE_DIR = Path(__file__).resolve().parent.parent.parent

OAS = OasSettings.from_env()

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-dev-key-change-me-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "0").lower() in {"1", "true", "yes"}
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",  # serves the /docs page's Swagger UI files itself (no CDN on a control network)
    "devices",
    "qsconsole",
    "camera",
]

MIDDLEWARE = [
    # First: its timing is the whole chain's (ophydsite_http_request_duration_seconds).
    "devices.metrics.exposition.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, /docs) from the apps' folders, with no collectstatic step and
    # with DEBUG off: the README's run command serves a styled admin and a working /docs.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "devices.rest.json_errors.JsonApiErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "devices.access.middleware.ApiTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ophydsite.urls"
ASGI_APPLICATION = "ophydsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
WHITENOISE_USE_FINDERS = True
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Plain text lines, or one JSON object a line with OAS_LOG_FORMAT=json (ophydsite/logging_setup.py).
LOGGING = logging_config(OAS.log_level, OAS.log_format)
LOGIN_REDIRECT_URL = "/"
