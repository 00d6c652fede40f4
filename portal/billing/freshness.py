"""Cheap repeat views of the balance page: ETags, 304 answers and the chart cached per day.

A validator is an HMAC (the app's secret key) of everything the answer shows, so it says
nothing about the balance and one customer's ETag never matches another's answer. The
page's version of the ledger is the account's newest entry id: entries of one account are
inserted under its row lock (portal.ledger.lock_account, or the switch's one-statement
debit, which locks the row by updating it), so ids grow in commit order per account and
a new entry always means a new id.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from pathlib import Path

from flask import Response, current_app, render_template, request, session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from portal.charts import line_chart
from portal.history import balance_series
from portal.models import LedgerEntry, utcnow

# A browser keeps the answer but asks every time (If-None-Match); shared caches never keep it.
CACHE_CONTROL = "private, no-cache"
VARY = "Cookie, HX-Request, HX-Target, Accept-Language"


def latest_entry_id(db: Session, account_id: int) -> int:
    """The account's newest ledger entry id (0 without entries): one index lookup.

    The signed-in customer's was read with the user (portal.auth.sessions.find_user_live)
    at the start of this request; a GET changes nothing, so it is still the newest.
    """
    account = request.__dict__.get("account")
    known = request.__dict__.get("newest_entry_id")
    if request.method == "GET" and known is not None and account and account.id == account_id:
        return known
    return db.scalar(_latest_entry_statement(), {"account_id": account_id}) or 0


@cache
def _latest_entry_statement():
    return select(func.max(LedgerEntry.id)).where(LedgerEntry.account_id == bindparam("account_id"))


def today():
    """The day the chart ends on (UTC, as portal.history.balance_series)."""
    return utcnow().date()


def locale_key() -> str:
    """What the answer's language and formats depend on: the profile's language (and
    locale, when profiles get one) and the browser's Accept-Language (portal.i18n)."""
    from flask_login import current_user

    profile = f"{getattr(current_user, 'language', '')}|{getattr(current_user, 'locale', '')}"
    return f"{profile}|{request.headers.get('Accept-Language', '')}"


@cache
def templates_version(root: str) -> str:
    """A digest of the templates: a deploy that changes a page changes every validator."""
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*.html")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def etag(*parts: object) -> str:
    """An opaque strong validator (unquoted) of the given parts, keyed by the secret key."""
    key = current_app.config["SECRET_KEY"]
    key = key.encode() if isinstance(key, str) else key
    version = templates_version(str(Path(current_app.root_path, current_app.template_folder)))
    message = "\x1f".join(map(str, (version, *parts))).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def page_etag(*parts: object) -> str | None:
    """The validator of a page for this session, or None when it must not be reused.

    The session's CSRF secret is part of it (the page holds a token derived from it) and
    pending flash messages make the page unique (they are shown once).
    """
    if session.get("_flashes"):
        return None
    generate_csrf()  # the page's token is derived from the session's secret, made here if new
    return etag(session.get("csrf_token", ""), request.full_path, locale_key(), *parts)


def unchanged(tag: str | None) -> bool:
    return tag is not None and tag in request.if_none_match


def not_modified(tag: str) -> Response:
    response = Response(status=304)
    return conditional(response, tag)


def conditional(response: Response, tag: str | None) -> Response:
    if tag is not None:
        response.set_etag(tag)
        response.headers["Cache-Control"] = CACHE_CONTROL
    else:
        response.headers["Cache-Control"] = "no-store"
    response.vary.update(part.strip() for part in VARY.split(","))
    return response


# --- rendered parts kept per process: the 90-day chart, the history's pages ----------------

_PARTS: OrderedDict[tuple, Markup] = OrderedDict()
_PARTS_LOCK = threading.Lock()
PARTS_CACHE_SIZE = 2048


def cached_part(key: tuple, render: Callable[[], str]) -> Markup:
    """Rendered HTML kept in a bounded LRU under `key`, which must name all it shows."""
    with _PARTS_LOCK:
        found = _PARTS.get(key)
        if found is not None:
            _PARTS.move_to_end(key)
            return found
    html = Markup(render())  # noqa: S704 - Jinja's autoescaped output
    with _PARTS_LOCK:
        _PARTS[key] = html
        while len(_PARTS) > PARTS_CACHE_SIZE:
            _PARTS.popitem(last=False)
    return html


def chart_html(db: Session, account, latest_id: int) -> Markup:
    """The rendered chart of the account's last 90 days.

    Kept per process under (account, today, newest entry id, currency, locale): a new entry
    of any date (a billing run may date one in the past) or a new day makes a new key, so
    a cached chart is never stale; old keys fall out of the bounded LRU.
    """
    key = ("chart", account.id, today(), latest_id, account.currency, locale_key())
    return cached_part(
        key,
        lambda: render_template(
            "billing/_chart.html", chart=line_chart(balance_series(db, account.id)), account=account
        ),
    )


def history_html(account_id: int, latest_id: int, template: str, render: Callable[[], str]):
    """A rendered page of the history (rows, filters, links), kept per process.

    Entries are immutable and a receipt is committed with its entry, so what a page of the
    history shows is fixed by the newest entry id and the query string (filters, `before`).
    """
    key = ("history", account_id, latest_id, template, request.query_string, locale_key())
    return cached_part(key, render)


def clear_cache() -> None:
    with _PARTS_LOCK:
        _PARTS.clear()
