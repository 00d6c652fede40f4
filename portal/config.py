"""Configuration from environment variables, with safe defaults for development."""

from __future__ import annotations

import os
from datetime import timedelta

DEV_SECRET_KEY = "dev-secret-key-not-for-production"  # noqa: S105
DEV_PIN_KEY = "dev-pin-encryption-key-not-for-production"  # noqa: S105
DEV_WEBHOOK_SECRET = "whsec_dev_localstripe"  # noqa: S105
LOCALSTRIPE_PORT = 8420


class ConfigError(RuntimeError):
    """Raised when the configuration is unsafe for the chosen environment."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def from_environment(instance_path: str) -> dict:
    """Build the configuration mapping from the process environment."""
    port = int(_env("PORT", "5000"))
    localstripe_port = int(_env("LOCALSTRIPE_PORT", str(LOCALSTRIPE_PORT)))
    stripe_base = _env("STRIPE_API_BASE", f"http://127.0.0.1:{localstripe_port}")
    return {
        "ENV_NAME": _env("PORTAL_ENV", "development"),
        "SECRET_KEY": _env("SECRET_KEY", DEV_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": _env(
            "DATABASE_URL", f"sqlite:///{os.path.join(instance_path, 'portal.db')}"
        ),
        # 1: DATABASE_URL points at PgBouncer (transaction pooling): no prepared statements.
        "DATABASE_PGBOUNCER": _env("DATABASE_PGBOUNCER", "0") == "1",
        "STRIPE_API_KEY": _env("STRIPE_API_KEY", "sk_test_localstripe"),
        "STRIPE_PUBLISHABLE_KEY": _env("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe"),
        "STRIPE_API_BASE": stripe_base,
        "STRIPE_JS_URL": _env("STRIPE_JS_URL", f"{stripe_base}/js.stripe.com/v3/"),
        "STRIPE_WEBHOOK_SECRET": _env("STRIPE_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET),
        "PIN_ENCRYPTION_KEY": _env("PIN_ENCRYPTION_KEY", DEV_PIN_KEY),
        "MAIL_SERVER": _env("MAIL_SERVER"),
        "MAIL_PORT": int(_env("MAIL_PORT", "25")),
        "MAIL_USERNAME": _env("MAIL_USERNAME"),
        "MAIL_PASSWORD": _env("MAIL_PASSWORD"),
        "MAIL_USE_TLS": _env("MAIL_USE_TLS", "0") == "1",
        "MAIL_FROM": _env("MAIL_FROM", "billing@portal.example"),
        "REDIS_URL": _env("REDIS_URL"),
        "PORT": port,
        "PUBLIC_URL": _env("PUBLIC_URL", f"http://127.0.0.1:{port}"),
        "RUN_SCHEDULER": _env("RUN_SCHEDULER", "0") == "1",
        "LOG_FORMAT": _env("LOG_FORMAT", "json" if _env("PORTAL_ENV") == "production" else "text"),
        "TRUSTED_PROXIES": int(_env("TRUSTED_PROXIES", "0")),
        "PASSWORD_HASH_METHOD": "scrypt",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _env("PORTAL_ENV", "development") == "production",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(minutes=int(_env("IDLE_TIMEOUT_MINUTES", "30"))),
        "SESSION_REFRESH_EACH_REQUEST": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "RATELIMIT_STORAGE_URI": _env("REDIS_URL", "memory://"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": _env("LOGIN_RATE_LIMIT", "10 per minute"),
        # Wrong two-factor codes allowed per user (per pending sign-in or signed-in user).
        "TWO_FACTOR_RATE_LIMIT": _env("TWO_FACTOR_RATE_LIMIT", "5 per 5 minutes"),
        # The operator and reseller admins must sign in with a second factor. Only the test
        # suite turns this off (its admins sign in with a password); production refuses it.
        "TWO_FACTOR_REQUIRED_FOR_ADMINS": True,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
    }


def check_production_safety(config: dict) -> None:
    """Refuse to run production with development secrets or a fake Stripe."""
    if config.get("ENV_NAME") != "production":
        return
    problems = []
    if config["SECRET_KEY"] == DEV_SECRET_KEY or len(config["SECRET_KEY"]) < 32:
        problems.append("SECRET_KEY is the development default or shorter than 32 characters")
    if config["PIN_ENCRYPTION_KEY"] == DEV_PIN_KEY:
        problems.append("PIN_ENCRYPTION_KEY is the development default")
    if config["STRIPE_WEBHOOK_SECRET"] == DEV_WEBHOOK_SECRET:
        problems.append("STRIPE_WEBHOOK_SECRET is the development default")
    base = config["STRIPE_API_BASE"] or ""
    if "127.0.0.1" in base or "localhost" in base or "localstripe" in config["STRIPE_API_KEY"]:
        problems.append("Stripe points at localstripe")
    if not config.get("TWO_FACTOR_REQUIRED_FOR_ADMINS", True):
        problems.append("TWO_FACTOR_REQUIRED_FOR_ADMINS must stay on in production")
    if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        problems.append("DATABASE_URL must point at PostgreSQL in production")
    if problems:
        raise ConfigError("Refusing to start in production: " + "; ".join(problems))
