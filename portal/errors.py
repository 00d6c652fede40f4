"""Friendly error pages; fragments for HTMX requests."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, render_template
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from portal.i18n import N_, _
from portal.web import is_htmx

log = logging.getLogger(__name__)

MESSAGES = {
    400: (
        N_("Bad request"),
        N_("The request could not be understood. Please check what you sent."),
    ),
    403: (
        N_("Not allowed"),
        N_("You do not have permission to see this page."),
    ),
    404: (
        N_("Not found"),
        N_("There is nothing here. It may have moved, or it is not yours to see."),
    ),
    405: (
        N_("Not allowed"),
        N_("That action is not available here."),
    ),
    413: (
        N_("Too large"),
        N_("What you sent is too large."),
    ),
    429: (
        N_("Too many attempts"),
        N_("Too many attempts. Please wait a moment and try again."),
    ),
    500: (
        N_("Something went wrong"),
        N_("We could not finish this. Nothing was changed; please retry."),
    ),
    503: (
        N_("Temporarily unavailable"),
        N_("The service is briefly unavailable. Please retry shortly."),
    ),
}


def render_error(code: int, detail: str | None = None):
    title, message = MESSAGES.get(code, MESSAGES[500])
    template = "errors/_error.html" if is_htmx() else "errors/error.html"
    page = render_template(template, code=code, title=_(title), message=detail or _(message))
    return page, code


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        from flask_wtf.csrf import CSRFError

        if isinstance(exc, CSRFError):
            return render_error(
                400,
                _(
                    "Your form expired or was not sent from this site. Reload the page and try"
                    " again."
                ),
            )
        response = render_error(exc.code or 500)
        # werkzeug's TooManyRequests has retry_after=None; "Retry-After: None" made
        # flask-limiter's header injection raise, so an exceeded login limit answered 500.
        if exc.code == 429 and getattr(exc, "retry_after", None) is not None:
            return response[0], 429, {"Retry-After": str(exc.retry_after)}
        return response

    @app.errorhandler(OperationalError)
    def database_down(exc: OperationalError):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        # The error page must not touch the database: no navigation, and an anonymous
        # current_user (Flask-Login's template context would otherwise load the user).
        g.database_down = True
        g._login_user = current_app.login_manager.anonymous_user()
        return render_error(503)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return render_error(500)
