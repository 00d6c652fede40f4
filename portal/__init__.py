"""The VoIP billing self-service portal: application factory."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the app (templates and static live at the top level)."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from portal import config

    app.config.from_mapping(config.from_environment(app.instance_path))
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    config.check_production_safety(app.config)
    os.makedirs(app.instance_path, exist_ok=True)
    from portal.logging_setup import configure_logging

    configure_logging(app)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    _init_extensions(app)
    _register_blueprints(app)
    return app


def _init_extensions(app: Flask) -> None:
    from portal import cli, db, errors, i18n, security, templating
    from portal.auth.session import init_login
    from portal.extensions import csrf, htmx, limiter

    db.init_app(app)
    init_login(app)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    i18n.init_app(app)
    cli.init_app(app)


def _register_blueprints(app: Flask) -> None:
    from portal.admin import bp as admin_bp
    from portal.api import bp as api_bp
    from portal.auth import bp as auth_bp
    from portal.billing import bp as billing_bp
    from portal.extensions import csrf
    from portal.webhooks import bp as webhooks_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(billing_bp, url_prefix="/billing")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    # The webhook is signature-checked and the API token-authenticated: no CSRF there.
    csrf.exempt(webhooks_bp)
    csrf.exempt(api_bp)
    app.register_blueprint(webhooks_bp, url_prefix="/webhooks")
    app.register_blueprint(api_bp, url_prefix="/api/v1")

    @app.get("/healthz")
    def healthz():
        return "ok", 200, {"Content-Type": "text/plain"}
