"""Superset's configuration for the warehouse's BI tool (``make bi`` and the compose service).

Read by Superset through ``SUPERSET_CONFIG_PATH``; everything that differs between a laptop and the
compose stack comes from the environment, so this one file serves both:

- ``SUPERSET_SECRET_KEY`` (required): signs sessions and encrypts the stored connection details.
  ``mwh bi`` creates one for local use in the BI state folder; the compose stack takes it from
  ``.env``. There is no default: a missing key stops Superset with the message below.
- ``SUPERSET_METADATA_URI``: Superset's own metadata database (default: SQLite in
  ``SUPERSET_HOME``).

Offline by design: no telemetry (the menu's tracking pixel is blocked by the content-security
policy, which allows this server's own origin only), no CDN, no map tiles, no web fonts.
"""

import os

_secret = os.environ.get("SUPERSET_SECRET_KEY", "")
if len(_secret) < 32:
    raise RuntimeError(
        "SUPERSET_SECRET_KEY is missing or shorter than 32 characters: set it in .env (compose) "
        "or start Superset with `make bi` / `mwh bi start`, which keeps one in the BI state folder."
    )
SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]

_home = os.environ.get("SUPERSET_HOME", os.path.expanduser("~/.superset"))
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SUPERSET_METADATA_URI", "sqlite:///" + os.path.join(_home, "superset.db")
)
SQLALCHEMY_TRACK_MODIFICATIONS = False

# One process, no Redis: caches in memory or none at all
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
FILTER_STATE_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 86400}
EXPLORE_FORM_DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 86400}
RATELIMIT_ENABLED = False
AUTH_RATE_LIMITED = False
RATELIMIT_STORAGE_URI = "memory://"

# Nothing leaves the machine
SCARF_ANALYTICS = False
THEME_FONT_URL_ALLOWED_DOMAINS: list[str] = []
TALISMAN_ENABLED = True
CONTENT_SECURITY_POLICY_WARNING = False
_SELF = ["'self'"]
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": _SELF,
        "default-src": _SELF,
        "img-src": [*_SELF, "blob:", "data:"],
        "worker-src": [*_SELF, "blob:"],
        "connect-src": _SELF,
        "object-src": "'none'",
        "style-src": [*_SELF, "'unsafe-inline'"],
        "font-src": _SELF,
        "script-src": [*_SELF, "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}
TALISMAN_DEV_CONFIG = TALISMAN_CONFIG

# The dashboards come from the committed bundle; SQL Lab stays read-only
# every chart drawn at once (no lazy rendering below the fold): screenshots and checks see all
FEATURE_FLAGS = {
    "DASHBOARD_RBAC": False,
    "ALERT_REPORTS": False,
    "THUMBNAILS": False,
    "DASHBOARD_VIRTUALIZATION": False,
}
SQLLAB_CTAS_NO_LIMIT = False
PREVENT_UNSAFE_DB_CONNECTIONS = False  # the serving file is a local DuckDB file, by design
WTF_CSRF_ENABLED = True
SUPERSET_WEBSERVER_TIMEOUT = 120


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """SQLite metadata in WAL mode with NORMAL sync: one fsync per checkpoint, not per commit (the
    metadata upgrade commits once per migration: minutes on a busy disk otherwise); a crash may
    lose the last transaction, never corrupt the file."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


if SQLALCHEMY_DATABASE_URI.startswith("sqlite:"):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _sqlite_pragmas)
