"""UI languages (Flask-Babel): which locale a request is served in.

The signed-in person's preferred language (profile) wins; otherwise the browser's
Accept-Language; otherwise English. Strings are marked with `_()` (templates and views) or
`_l()` (module-level labels evaluated per request); catalogues live in portal/translations.
"""

from __future__ import annotations

from flask import Flask, g, request
from flask_babel import Babel
from flask_babel import gettext as _  # noqa: F401  (re-exported for views)
from flask_babel import lazy_gettext as _l  # noqa: F401
from flask_login import current_user

DEFAULT_LOCALE = "en"
# Languages shipped with complete catalogues (a test fails when one misses a string).
LANGUAGES = {"en": "English", "de": "Deutsch", "es": "Español"}

babel = Babel()


def select_locale() -> str:
    preferred = None
    # The error page of a database outage must not load the user.
    if not g.get("database_down") and current_user.is_authenticated:
        preferred = getattr(current_user, "language", None)
    if preferred in LANGUAGES:
        return preferred
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LOCALE)


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    babel.init_app(app, locale_selector=select_locale)
