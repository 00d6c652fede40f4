"""UI languages (Flask-Babel): which locale a request is served in.

The signed-in person's preferred language (profile) wins; otherwise the browser's
Accept-Language; otherwise English. Strings are marked with `_()` (templates and views) or
`_l()` (module-level labels evaluated per request); catalogues live in portal/translations.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from pathlib import Path

from babel.dates import format_date
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from flask import Flask, g, has_request_context, request, session
from flask_babel import (
    Babel,
    get_locale,
    get_translations,
    ngettext,  # noqa: F401
)
from flask_babel import gettext as _  # noqa: F401  (re-exported for views)
from flask_babel import lazy_gettext as _l  # noqa: F401
from flask_login import current_user

from portal.money import format_money

DEFAULT_LOCALE = "en"
# Languages shipped with complete catalogues (a test fails when one misses a string).
LANGUAGES = {"en": "English", "de": "Deutsch", "es": "Español"}

# Money and numbers: the region whose conventions each language is shown with
# (English keeps the portal's British formatting: "£1,234.56", "02 Dec 2026").
FORMAT_LOCALES = {"en": "en_GB", "de": "de_DE", "es": "es_ES"}
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
# Where the session keeps the language chosen with the switcher (people not signed in).
SESSION_KEY = "language"

babel = Babel()


def N_(message: str) -> str:
    """Mark a string for the catalogue without translating it here (translated where shown)."""
    return message


# Words that reach templates as data (enum values, labels of documents) and are translated there
# with `_(value)`: listed so that extraction puts them in the catalogues.
DATA_WORDS = (
    # invoice, payment and mail states; billing models; plan change directions
    N_("open"),
    N_("overdue"),
    N_("paid"),
    N_("void"),
    N_("draft"),
    N_("pending"),
    N_("succeeded"),
    N_("failed"),
    N_("requires action"),
    N_("partially refunded"),
    N_("refunded"),
    N_("disputed"),
    N_("won"),
    N_("lost"),
    N_("canceled"),
    N_("processing"),
    N_("prepaid"),
    N_("postpaid"),
    N_("upgrade"),
    N_("downgrade"),
    N_("same price"),
    N_("activated"),
    N_("expired"),
    N_("new"),
    # documents
    N_("Invoice"),
    N_("Receipt"),
    N_("Issued"),
    N_("Due"),
    N_("Period from"),
    N_("Period to"),
    N_("Paid"),
    # warning mails
    N_("Credit limit"),
    N_("Low funds"),
    # Enum values as shown by the `label` filter ("auto_recharge" -> "Auto recharge")
    N_("Account"),
    N_("Api token"),
    N_("Card code"),
    N_("Email"),
    N_("Topup card"),
    N_("Topup card batch"),
    N_("Topup cards"),
    N_("User"),
    N_("Used"),
    N_("Requested"),
    N_("Canceled"),
    N_("Activated"),
    N_("Active"),
    N_("Addon"),
    N_("Adjustment"),
    N_("Auto recharge"),
    N_("Chargeback"),
    N_("Chargeback reversal"),
    N_("Closed"),
    N_("Credit note"),
    N_("Disputed"),
    N_("Expired"),
    N_("Failed"),
    N_("In flight"),
    N_("Invoice"),
    N_("Lost"),
    N_("Manual"),
    N_("New"),
    N_("Open"),
    N_("Overdue"),
    N_("Paid"),
    N_("Partially refunded"),
    N_("Payment"),
    N_("Pending"),
    N_("Plan change"),
    N_("Plan fee"),
    N_("Postpaid"),
    N_("Prepaid"),
    N_("Refund"),
    N_("Refunded"),
    N_("Requires action"),
    N_("Succeeded"),
    N_("Suspended"),
    N_("Topup"),
    N_("Transfer in"),
    N_("Transfer out"),
    N_("Usage"),
    N_("Void"),
    N_("Voucher"),
    N_("Won"),
)
# The language set for emails (the recipient's, in a request or a job): wins over the request's.
_forced: ContextVar[str | None] = ContextVar("ui_language", default=None)


def select_locale() -> str:
    if not has_request_context():  # a job: the language set by `rendering_in`, else English
        return _forced.get() or DEFAULT_LOCALE
    preferred = None
    # The error page of a database outage must not load the user.
    if not g.get("database_down") and current_user.is_authenticated:
        preferred = getattr(current_user, "language", None)
    if preferred in LANGUAGES:
        return preferred
    chosen = session.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LOCALE)


def current_language() -> str:
    """The language now: set by `rendering_in`, else the request's, else English."""
    language = _forced.get()
    if language is None:
        language = str(get_locale() or DEFAULT_LOCALE) if has_request_context() else DEFAULT_LOCALE
    return language if language in LANGUAGES else DEFAULT_LOCALE


@contextmanager
def rendering_in(language: str | None):
    """Render emails/documents in `language` (unknown -> English), in a request or not."""
    token = _forced.set(language if language in LANGUAGES else DEFAULT_LOCALE)
    try:
        yield
    finally:
        _forced.reset(token)


def format_locale() -> str:
    return FORMAT_LOCALES[current_language()]


def _catalogue(language: str) -> NullTranslations:
    if language == DEFAULT_LOCALE:
        return NullTranslations()
    return _load_catalogue(language)


_CATALOGUES: dict[str, NullTranslations] = {}


def _load_catalogue(language: str) -> NullTranslations:
    if language not in _CATALOGUES:
        _CATALOGUES[language] = Translations.load(str(TRANSLATIONS_DIR), [language])
    return _CATALOGUES[language]


def _translations() -> NullTranslations:
    if _forced.get() is None and has_request_context():
        return get_translations()
    return _catalogue(current_language())


# gettext for the app-less Jinja environment (documents, emails): no Flask needed. Jinja's
# "newstyle" gettext fills in the %(name)s placeholders itself.
def plain_gettext(message: str) -> str:
    return _translations().ugettext(message)


def plain_ngettext(singular: str, plural: str, num: int) -> str:
    return _translations().ungettext(singular, plural, num)


# --- Locale formatting (the Jinja filters of portal.templating) -----------------------------


def format_day(value: date | datetime | None) -> str:
    if not value:
        return ""
    language = current_language()
    if language == DEFAULT_LOCALE:
        return value.strftime("%d %b %Y")
    day = value.date() if isinstance(value, datetime) else value
    return format_date(day, "medium", locale=FORMAT_LOCALES[language])


def format_moment(value: datetime | None) -> str:
    if not value:
        return ""
    if current_language() == DEFAULT_LOCALE:
        return value.strftime("%d %b %Y %H:%M")
    # The time as stored (no time-zone conversion), in the 24-hour form both locales use.
    return f"{format_day(value)} {value.strftime('%H:%M')}"


# portal.money's refusals are English (it has no gettext); shown through money_error().
MONEY_ERRORS = (
    N_("Enter an amount."),
    N_("Enter a plain number such as 12.50."),
    N_("Enter a positive amount."),
    N_("Enter an amount greater than zero."),
)
_MONEY_PATTERNS = (
    (re.compile(r"^(\w{3}) amounts have no decimals\.$"), ("currency",)),
    (re.compile(r"^Use at most (\d+) decimals for (\w{3})\.$"), ("digits", "currency")),
    (re.compile(r"^Enter an amount up to (.+)\.$"), ("amount",)),
)


def money_error(message: str) -> str:
    """A MoneyError message in the reader's language."""
    for pattern, names in _MONEY_PATTERNS:
        match = pattern.match(message)
        if match:
            values = dict(zip(names, match.groups(), strict=True))
            if "digits" in values:
                return _("Use at most %(digits)s decimals for %(currency)s.", **values)
            if "amount" in values:
                return _("Enter an amount up to %(amount)s.", **values)
            return _("%(currency)s amounts have no decimals.", **values)
    return _(message)


def label(value: str) -> str:
    """An enum value for people, translated: "auto_recharge" -> "Auto recharge"."""
    return _(value.replace("_", " ").capitalize())


def format_amount(minor: int | None, currency: str) -> str:
    """An amount in the current language's conventions ("£1,234.56", "1.234,56 €")."""
    if minor is None:
        return _("Unlimited")
    return format_money(minor, currency, locale=format_locale())


def format_number(value) -> str:
    if value is None:
        return ""
    return format_decimal(value, locale=format_locale())


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    babel.init_app(app, locale_selector=select_locale)
