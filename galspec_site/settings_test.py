"""Test settings: the same settings, with data in a throw-away folder and fast password hashing.

DATABASE_URL and REDIS_URL still choose the backends, so CI runs the suite on PostgreSQL and Redis.
"""

import os
import tempfile

os.environ.setdefault("GALSPEC_DATA_DIR", tempfile.mkdtemp(prefix="galspec-test-"))

from galspec_site.settings import *  # noqa: E402,F403

SECRET_KEY = "galspec-test-suite-key-never-deployed-" + "x7Kq2mZ9" * 3  # noqa: S105  the tests' own, never deployed
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

# Tests make many requests a minute from one address; the throttling tests set their own low rates.
REST_FRAMEWORK = {  # noqa: F405
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {scope: "100000/minute" for scope in ("anon", "user", "login", "poll")},
}
