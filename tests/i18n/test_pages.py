"""Pages in the reader's language: German and Spanish pages show no English UI text, the switcher
works for everyone, and money and dates follow the language's conventions."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from babel.dates import format_date
from babel.numbers import format_currency
from sqlalchemy import select

from portal.demo import DEMO_PASSWORD
from portal.i18n import TRANSLATIONS_DIR, format_amount, format_day, format_moment, rendering_in
from portal.models import Role, User
from tests.builders import login, make_account, make_reseller, make_user

SKIP = re.compile(r"(\.csv|\.pdf|/csv|/pdf|/download|/export|logout|sign-out|/html$)")
ROLES = {
    "customer": ("/billing/balance", ("/billing", "/profile")),
    "operator": ("/admin/", ("/admin", "/profile")),
}


class Texts(HTMLParser):
    """The visible text nodes and labelling attributes of a page, and its links."""

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self.links: list[str] = []
        self.lang = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for name in ("aria-label", "placeholder", "title", "alt", "hx-confirm"):
            if attrs.get(name):
                self.texts.append(attrs[name].strip())

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(" ".join(data.split()))


def parse(html: str) -> Texts:
    texts = Texts()
    texts.feed(html)
    return texts


def english_ui_strings(language: str) -> set[str]:
    """English UI strings (without placeholders) whose translation reads differently."""
    from babel.messages.pofile import read_po

    with open(TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po", "rb") as po:
        catalogue = read_po(po)
    return {
        " ".join(m.id.split())
        for m in catalogue
        if m.id
        and isinstance(m.id, str)
        and "%" not in m.id
        and "<" not in m.id
        and len(m.id) > 2
        and m.string
        and m.string != m.id
    }


def crawl(client, start: str, prefixes: tuple[str, ...], limit: int = 45):
    """GET each page of the area once (ids make one pattern), like a person following links."""
    queue, seen = [start], set()
    while queue and len(seen) < limit:
        path = queue.pop(0)
        key = re.sub(r"/\d+(?=/|$)", "/<id>", path)
        if key in seen:
            continue
        seen.add(key)
        response = client.get(path)
        if response.status_code != 200 or "text/html" not in response.content_type:
            continue
        page = parse(response.get_data(as_text=True))
        yield path, page
        for href in page.links:
            parts = urlsplit(href)
            if not parts.netloc and parts.path.startswith(prefixes) and not SKIP.search(href):
                queue.append(parts.path)


@pytest.mark.slow
@pytest.mark.parametrize("language", ["de", "es"])
@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_a_role_is_in_the_profile_language(app, client, db, demo, role, language):
    start, prefixes = ROLES[role]
    if role == "customer":  # Alice of the demo: history, invoices, cards, reserve credit
        db.scalar(select(User).where(User.email == "alice@example.com")).language = language
        db.commit()
        assert login(client, "alice@example.com", DEMO_PASSWORD).status_code == 302
    else:  # an operator without two-factor sign-in, over the demo's data
        make_user(db, role=Role.OPERATOR, email="op@t.test", language=language)
        db.commit()
        assert login(client, "op@t.test").status_code == 302
    english = english_ui_strings(language)
    problems, pages = {}, 0
    for path, page in crawl(client, start, prefixes):
        pages += 1
        found = sorted({text for text in page.texts if text in english})
        if page.lang != language:
            found.insert(0, f"<html lang={page.lang!r}>")
        if found:
            problems[path] = found
    assert pages >= 10
    assert not problems, "\n".join(f"{path}: {texts}" for path, texts in problems.items())


def test_a_german_browser_gets_german_pages(client):
    response = client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    page = parse(response.get_data(as_text=True))
    assert page.lang == "de"
    assert "Anmelden" in page.texts and "Passwort vergessen?" in page.texts
    assert "Sign in" not in page.texts and "Forgot password?" not in page.texts


def test_english_stays_the_default(client):
    for headers in ({}, {"Accept-Language": "fr-FR"}, {"Accept-Language": "en-US,en;q=0.9"}):
        page = parse(client.get("/login", headers=headers).get_data(as_text=True))
        assert page.lang == "en"
        assert "Sign in" in page.texts and "Change language" in page.texts


def test_the_switcher_is_on_every_page_with_a_label_and_csrf(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    html = client.get("/login").get_data(as_text=True)
    form = re.search(r'<form method="post" action="/language".*?</form>', html, re.S).group(0)
    assert '<label for="language-switcher">Language</label>' in form
    assert 'name="csrf_token"' in form and 'name="next" value="/login"' in form
    assert re.search(r'<option value="en" lang="en" selected>English</option>', form)
    # Without the token the change is refused and nothing is remembered.
    assert client.post("/language", data={"language": "de"}).status_code == 400
    assert parse(client.get("/login").get_data(as_text=True)).lang == "en"


def test_anonymous_switch_is_remembered_in_the_session(client):
    response = client.post(
        "/language",
        data={"language": "es", "next": "/login?next=%2Fbilling"},
        headers={"Accept-Language": "de"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=%2Fbilling"
    page = parse(client.get("/login", headers={"Accept-Language": "de"}).get_data(as_text=True))
    assert page.lang == "es"
    assert "Iniciar sesión" in page.texts
    assert "Idioma cambiado a Español." in page.texts  # the confirmation, in the new language


def test_signed_in_switch_updates_the_profile(client, db):
    account = make_account(db, reseller=make_reseller(db))
    user = make_user(db, account=account, email="switch@t.test")
    db.commit()
    login(client, "switch@t.test")
    response = client.post("/language", data={"language": "de", "next": "/profile"})
    assert response.headers["Location"] == "/profile"
    db.refresh(user)
    assert user.language == "de"
    page = parse(client.get("/profile").get_data(as_text=True))
    assert page.lang == "de" and "Ihre Angaben" in page.texts
    # Signed out, the browser keeps the choice it made.
    client.post("/logout")
    assert parse(client.get("/login").get_data(as_text=True)).lang == "de"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil", ""])
def test_the_switcher_only_returns_to_pages_of_this_site(client, target):
    response = client.post("/language", data={"language": "de", "next": target})
    assert response.headers["Location"] == "/"


def test_an_unknown_language_is_refused_and_changes_nothing(client, db):
    account = make_account(db, reseller=make_reseller(db))
    user = make_user(db, account=account, email="xx@t.test")
    db.commit()
    login(client, "xx@t.test")
    response = client.post("/language", data={"language": "xx", "next": "/profile"})
    assert response.status_code == 303
    db.refresh(user)
    assert user.language == "en"
    page = parse(client.get("/profile").get_data(as_text=True))
    assert "Choose one of the languages offered." in page.texts


def test_the_profile_language_wins_over_the_switchers_session_choice(client, db):
    client.post("/language", data={"language": "es"})
    account = make_account(db, reseller=make_reseller(db))
    make_user(db, account=account, email="pref@t.test", language="de")
    db.commit()
    login(client, "pref@t.test")
    assert parse(client.get("/profile").get_data(as_text=True)).lang == "de"


@pytest.mark.parametrize(
    ("language", "babel_locale"), [("en", "en_GB"), ("de", "de_DE"), ("es", "es_ES")]
)
def test_money_and_dates_follow_the_language(app, language, babel_locale):
    with app.test_request_context("/", headers={"Accept-Language": language}):
        for minor, currency in ((123456, "EUR"), (1234, "GBP"), (-50, "USD"), (1234567, "EUR")):
            expected = format_currency(Decimal(minor) / 100, currency, locale=babel_locale)
            assert format_amount(minor, currency) == expected
        day, moment = date(2026, 12, 2), datetime(2026, 12, 2, 14, 5)
        if language == "en":  # the portal's English forms, unchanged
            assert (format_day(day), format_moment(moment)) == ("02 Dec 2026", "02 Dec 2026 14:05")
        else:
            assert format_day(day) == format_date(day, "medium", locale=babel_locale)
            assert format_moment(moment) == format_day(day) + " 14:05"
        assert format_amount(None, "GBP") == {"en": "Unlimited", "de": "Unbegrenzt"}.get(
            language, "Ilimitado"
        )


def test_the_shapes_of_amounts(app):
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert format_amount(123456, "EUR") == "1.234,56\xa0€"
        assert format_amount(1234, "GBP") == "12,34\xa0£"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert format_amount(123456, "GBP") == "£1,234.56"


def test_a_german_balance_page_formats_money_and_dates_in_german(client, db, demo):
    alice = db.scalar(select(User).where(User.email == "alice@example.com"))
    alice.language = "de"
    db.commit()
    login(client, "alice@example.com", DEMO_PASSWORD)
    html = client.get("/billing/balance").get_data(as_text=True)
    # The figures and the history's amounts and times (descriptions are stored ledger text).
    assert re.search(r'id="balance-value">-?[\d.]+,\d\d\xa0£<', html)
    cells = re.findall(r'<td class="money[^"]*">([^<]*)</td>', html)
    assert cells and all(re.fullmatch(r"-?[\d.]+,\d\d\xa0£", cell) for cell in cells), cells
    times = re.findall(r"<tr>\s*<td>([^<]*)</td>", html)
    assert times and all(re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d", t) for t in times), times


def test_emails_are_written_in_the_recipients_language(app, db):
    from portal import emails, notifications  # noqa: F401

    account = make_account(db, reseller=make_reseller(db), currency="EUR")
    make_user(db, account=account, email="es@t.test", language="es")
    db.commit()
    with app.app_context():
        assert emails.recipient_language(db, account) == "es"
        subject, text, html = emails.render_email(
            "credit_limit", "es", account=account, old_limit="1", new_limit="2", valid_until=None
        )
    assert subject == "Su límite de crédito ha cambiado"
    assert text.startswith(f"Hola, {account.name}:")
    assert '<html lang="es">' in html


def test_documents_render_outside_a_request_in_english_or_a_chosen_language():
    from portal.documents import environment

    template = environment().from_string("{{ _('Invoice') }} {{ amount|money(currency) }}")
    assert template.render(amount=123456, currency="EUR") == "Invoice €1,234.56"
    with rendering_in("de"):
        assert template.render(amount=123456, currency="EUR") == "Rechnung 1.234,56\xa0€"
