"""GalSpec settings: one file, everything that differs between deployments read from the environment.

Defaults run on a laptop with nothing installed: SQLite, a filesystem Celery broker, data under ./var.
Production sets DATABASE_URL (PostgreSQL) and REDIS_URL (Celery broker and result backend).
Every variable is listed with its default in .env.example.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("GALSPEC_DEBUG", default=False)
ALLOWED_HOSTS = env.list("GALSPEC_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# Behind HTTPS (production): secure cookies, redirects to https, HSTS. Off by default so that the demo's
# plain-http site on localhost can log people in; `manage.py check --deploy` is clean with it on.
HTTPS = env.bool("GALSPEC_HTTPS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env.int("GALSPEC_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None  # TLS ends at the proxy
CSRF_TRUSTED_ORIGINS = env.list("GALSPEC_CSRF_TRUSTED_ORIGINS", default=[])

# Arrays (preprocessed flux, embeddings), checkpoints, indexes and the embedded broker live here.
DATA_DIR = Path(env("GALSPEC_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# The secret key: GALSPEC_SECRET_KEY, else the one `manage.py demo` made for this data folder, else a public
# one that only development commands accept: gunicorn and Celery workers refuse to start with it
# (galspec_site.startup), and `check --deploy` names it.
INSECURE_SECRET_KEY = "galspec-insecure-development-key-change-me"  # noqa: S105  public on purpose, refused by servers
SECRET_KEY_FILE = DATA_DIR / "secret_key"
_configured = env("GALSPEC_SECRET_KEY", default="").strip()  # the public key (old .env files set it) counts as unset
SECRET_KEY = (_configured if _configured != INSECURE_SECRET_KEY else "") or (
    SECRET_KEY_FILE.read_text().strip() if SECRET_KEY_FILE.is_file() else INSECURE_SECRET_KEY
)
# Where real SDSS files for tests and comparisons are found (never copied into the repository).
SHARED_DATA_DIR = Path(env("GALSPEC_SHARED_DATA", default=str(BASE_DIR.parent / "shared" / "data")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us: the API docs work offline
    "celery_progress",  # the browser's progress bar for background jobs
    "kb",
    "training",
    "inference",
    "experiments",  # manage.py evaluate: the paper's experiments; nothing in the site imports it
]

MIDDLEWARE = [
    "galspec_site.middleware.RequestSizeLimitMiddleware",  # first: refuses an oversized body before it is read
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "galspec_site.middleware.PageThrottleMiddleware",  # after authentication: counts a person as themselves
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "galspec_site.urls"
WSGI_APPLICATION = "galspec_site.wsgi.application"

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
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'galspec.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, commands) share the file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
else:
    # A server database: keep each process's connection for 10 minutes (a new one costs 2.3 ms here,
    # +38% searches/s on PostgreSQL), checked before reuse; `?conn_max_age=N` in DATABASE_URL overrides.
    DATABASES["default"].setdefault("CONN_MAX_AGE", 600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# plotly.js's "basic" bundle (scatter, bar: all the pages draw; 1.2 MB, not the full 4.8 MB) is vendored in
# static/vendor/plotly at the version the pinned plotly package ships: served by us, no CDN, works offline.
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("GALSPEC_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

# Celery: Redis in production; with no REDIS_URL, an embedded filesystem broker needing no server.
REDIS_URL = env("REDIS_URL", default="")
BROKER_DIR = Path(env("GALSPEC_BROKER_DIR", default=str(DATA_DIR / "broker")))
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_RESULT_BACKEND = env(
    "CELERY_RESULT_BACKEND", default=REDIS_URL or f"file://{(BROKER_DIR / 'results').as_posix()}"
)
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    for folder in ("queue", "processed", "control", "results"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env.bool("GALSPEC_CELERY_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ROUTES = {
    "training.tasks.*": {"queue": "training"},
    "inference.tasks.embedding_*": {"queue": "embedding"},
    "inference.tasks.knowledge_base_*": {"queue": "embedding"},  # an index build embeds what is missing
    "inference.tasks.bulk_search_*": {"queue": "embedding"},  # embeds what is missing, then searches
}
CELERY_TASK_DEFAULT_QUEUE = "default"
# An admin's operation or a survey search whose worker has been silent this long is taken up by another
# (or a restarted) worker.
GALSPEC_OPERATION_STALE_S = env.int("GALSPEC_OPERATION_STALE_S", default=120)
# Survey searches: spectra per part, and the most helpers one search sends to other embedding workers.
GALSPEC_SURVEY_CHUNK = env.int("GALSPEC_SURVEY_CHUNK", default=10_000)
GALSPEC_SURVEY_HELPERS = env.int("GALSPEC_SURVEY_HELPERS", default=8)
# Embedding: spectra per part (the unit of resumption), and the most helpers one embedder sends to other
# embedding workers.
GALSPEC_EMBEDDING_CHUNK = env.int("GALSPEC_EMBEDDING_CHUNK", default=1024)
GALSPEC_EMBEDDING_HELPERS = env.int("GALSPEC_EMBEDDING_HELPERS", default=8)

# Pipeline defaults.
GALSPEC_DEVICE = env("GALSPEC_DEVICE", default="auto")  # auto | cpu | cuda
GALSPEC_TORCH_THREADS = env.int("GALSPEC_TORCH_THREADS", default=0)  # 0: torch's own default
# Processes a pre-training runs over on this machine (torchrun, DistributedDataParallel): 1 runs in the worker.
GALSPEC_TRAIN_PROCESSES = env.int("GALSPEC_TRAIN_PROCESSES", default=1)
# Machines a pre-training spans: the worker that launches it is node 0, reached by the others at
# GALSPEC_TRAIN_MASTER (host:port); each other machine runs `manage.py pretrain_join --run ID --node-rank R`.
GALSPEC_TRAIN_NODES = env.int("GALSPEC_TRAIN_NODES", default=1)
GALSPEC_TRAIN_MASTER = env("GALSPEC_TRAIN_MASTER", default="")

# Uploads: one spectrum file at most this size; a batch at most this many files or identifiers.
GALSPEC_MAX_UPLOAD_BYTES = env.int("GALSPEC_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
GALSPEC_MAX_BATCH = env.int("GALSPEC_MAX_BATCH", default=10_000)
GALSPEC_MAX_ACTIVE_JOBS = env.int("GALSPEC_MAX_ACTIVE_JOBS", default=5)  # queued or running, per person
DATA_UPLOAD_MAX_NUMBER_FILES = GALSPEC_MAX_BATCH
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024  # larger uploads spill to a temporary file

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "inference:search"
LOGOUT_REDIRECT_URL = "inference:search"

# Throttles count requests in this cache: Redis when there is one, so that every web process shares it.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "galspec",
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(DATA_DIR / "cache")}
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "galspec_site.api.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    # Anonymous clients as on SkyServer (60 a minute); a token raises the limit.
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("GALSPEC_THROTTLE_ANON", default="60/minute"),
        "user": env("GALSPEC_THROTTLE_USER", default="600/minute"),
        "login": env("GALSPEC_THROTTLE_LOGIN", default="5/minute"),  # passwords tried per address
        "poll": env("GALSPEC_THROTTLE_POLL", default="300/minute"),  # progress bars poll about once a second
    },
    # Proxies in front of the site that append to X-Forwarded-For: 0 ignores the header, so a client cannot
    # choose the address it is throttled as; behind one reverse proxy (nginx), set 1.
    "NUM_PROXIES": env.int("GALSPEC_NUM_PROXIES", default=0),
    "EXCEPTION_HANDLER": "galspec_site.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "GalSpec API",
    "DESCRIPTION": "Retrieval-augmented search for target galaxies in spectroscopic surveys: spectra, search tasks, "
    "knowledge bases, searches that show their evidence, batch search jobs and searches of the whole survey.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "inference.models.RunStatus",  # batch jobs, survey searches
        "CatalogEnum": "kb.catalogs.CATALOG_CHOICES",  # catalog labels, and tasks made from an ingested catalog
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("GALSPEC_LOG_LEVEL", default="WARNING")},
}
