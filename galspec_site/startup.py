"""What a server checks before it serves: gunicorn (``galspec_site.wsgi``) and every Celery worker
(``galspec_site.celery``) refuse to start with the public built-in secret key."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

HOW = (
    "Set GALSPEC_SECRET_KEY to a long random string, e.g. the output of "
    "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` (README, Security). "
    "`manage.py demo` makes a key of its own under the data folder."
)


def secret_key_check(server: str) -> None:
    """ImproperlyConfigured, saying what to set, if ``server`` would run with the public built-in key, or one
    as weak as Django's ``check --deploy`` calls weak (under 50 characters, or under 5 distinct ones): anyone
    could then forge sessions, CSRF tokens and password-reset links."""
    key = settings.SECRET_KEY
    if key == settings.INSECURE_SECRET_KEY:
        raise ImproperlyConfigured(
            f"GalSpec will not start {server} with its built-in SECRET_KEY, which is public. {HOW}"
        )
    if len(key) < 50 or len(set(key)) < 5:
        raise ImproperlyConfigured(f"GalSpec will not start {server}: its SECRET_KEY is too short to be secret. {HOW}")
