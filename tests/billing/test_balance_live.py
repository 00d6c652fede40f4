"""The balance page's conditional answers (ETag -> 304), its cached chart and the live figures."""

from __future__ import annotations

import pytest

from portal import api_tokens
from portal.billing import freshness, routes
from portal.ledger import post_entry
from portal.models import EntryKind
from tests.builders import login, make_account, make_customer, make_reseller, make_user

HTMX = {"HX-Request": "true"}
SUMMARY = "/billing/balance/summary"


@pytest.fixture
def app_config():
    return {"AFTER_DEBIT_CHECKS": "off"}


@pytest.fixture
def alice(db, client):
    user = make_customer(db, number="700001")
    post_entry(
        db,
        account_id=user.account_id,
        kind=EntryKind.TOPUP,
        amount_minor=5000,
        description="Opening",
        idempotency_key="open",
    )
    token = api_tokens.create_token(db, reseller_id=user.account.reseller_id, name="switch")
    db.commit()
    login(client, user.email)
    client.get("/billing/balance")  # shows (and so ends) any message of the sign-in
    freshness.clear_cache()
    return {"user": user, "api": {"Authorization": f"Bearer {token.plaintext}"}}


def api_charge(client, headers, amount="1.25", key="c1"):
    response = client.post(
        "/api/v1/accounts/700001/charges",
        json={"amount": amount, "description": "Call", "idempotency_key": key},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response


def credit(db, account_id, amount_minor, key):
    post_entry(
        db,
        account_id=account_id,
        kind=EntryKind.TOPUP,
        amount_minor=amount_minor,
        description="Payment",
        idempotency_key=key,
    )
    db.commit()


def conditional_get(client, url, tag, headers=None):
    return client.get(url, headers={"If-None-Match": f'"{tag}"', **(headers or {})})


def test_a_repeat_view_of_the_unchanged_page_answers_304(client, alice):
    first = client.get("/billing/balance")
    tag = first.headers["ETag"].strip('"')
    assert first.status_code == 200 and tag
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert "HX-Request" in first.headers["Vary"] and "Cookie" in first.headers["Vary"]
    again = conditional_get(client, "/billing/balance", tag)
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert conditional_get(client, "/billing/balance", "not-it").status_code == 200


def test_the_page_etag_changes_with_the_ledger_and_the_balance(client, db, alice):
    tag = client.get("/billing/balance").headers["ETag"].strip('"')
    api_charge(client, alice["api"])
    changed = conditional_get(client, "/billing/balance", tag)
    assert changed.status_code == 200 and "£48.75" in changed.text
    # Two entries that leave the balance where it was still change the page (the history).
    tag = changed.headers["ETag"].strip('"')
    credit(db, alice["user"].account_id, 100, "plus")
    credit(db, alice["user"].account_id, -100, "minus")
    again = conditional_get(client, "/billing/balance", tag)
    assert again.status_code == 200 and "£48.75" in again.text


def test_a_flash_message_is_never_answered_from_the_cache(client, alice, app):
    tag = client.get("/billing/balance").headers["ETag"].strip('"')
    with client.session_transaction() as session:
        session["_flashes"] = [("success", "Saved")]
    shown = conditional_get(client, "/billing/balance", tag)
    assert shown.status_code == 200 and "Saved" in shown.text
    assert shown.headers["Cache-Control"] == "no-store" and "ETag" not in shown.headers


def test_another_language_never_gets_this_languages_page(client, alice):
    tag = client.get("/billing/balance").headers["ETag"].strip('"')
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    assert conditional_get(client, "/billing/balance", tag, german).status_code == 200
    assert conditional_get(client, "/billing/balance", tag).status_code == 304


def test_htmx_gets_the_history_fragment_with_its_own_etag(client, alice):
    page = client.get("/billing/balance")
    fragment = client.get("/billing/balance", headers=HTMX)
    assert "<html" in page.text and "<html" not in fragment.text
    assert 'id="history"' in fragment.text
    assert fragment.headers["ETag"] != page.headers["ETag"]
    # The page's validator never answers for the fragment (nor the other way round).
    page_tag = page.headers["ETag"].strip('"')
    assert conditional_get(client, "/billing/balance", page_tag, HTMX).status_code == 200
    fragment_tag = fragment.headers["ETag"].strip('"')
    assert conditional_get(client, "/billing/balance", fragment_tag, HTMX).status_code == 304
    assert conditional_get(client, "/billing/balance", fragment_tag).status_code == 200


def test_the_chart_is_cached_per_day_and_redrawn_when_the_ledger_changes(
    client, db, alice, monkeypatch
):
    calls = []
    real = freshness.balance_series
    monkeypatch.setattr(
        freshness, "balance_series", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    before = client.get("/billing/balance").text
    client.get("/billing/balance")
    assert len(calls) == 1  # the second view drew nothing
    credit(db, alice["user"].account_id, 250_000, "big")  # today: the chart's last point moves
    after = client.get("/billing/balance").text
    assert len(calls) == 2
    assert chart(after) != chart(before)
    assert "£2,550.00" in chart(after)  # the y axis reaches the new balance


def test_the_history_is_kept_rendered_and_shows_each_new_entry(client, db, alice, monkeypatch):
    calls = []
    real = routes.history_page
    monkeypatch.setattr(routes, "history_page", lambda *a, **k: calls.append(1) or real(*a, **k))
    client.get("/billing/balance")
    client.get("/billing/balance", headers=HTMX)
    usage = client.get("/billing/balance?kind=usage", headers=HTMX)
    # Drawn once per variant: the page and its HTMX fragment share the rendered history.
    assert len(calls) == 2 and "No entries yet" in usage.text
    client.get("/billing/balance")
    client.get("/billing/balance?kind=usage", headers=HTMX)
    assert len(calls) == 2
    api_charge(client, alice["api"], key="new-call")
    page = client.get("/billing/balance").text
    usage = client.get("/billing/balance?kind=usage", headers=HTMX).text
    assert len(calls) == 4
    assert history(page).count("<tr>") == 2 and "Call" in history(page)
    assert "Call" in usage and "No entries yet" not in usage


def history(html: str) -> str:
    return html[html.index('id="history-rows"') : html.index("</tbody>")]


def chart(html: str) -> str:
    return html[html.index("<svg") : html.index("</svg>")]


def test_live_figures_answer_304_until_a_charge_or_a_credit(client, db, alice):
    first = client.get(SUMMARY, headers=HTMX)
    assert first.status_code == 200 and "<html" not in first.text
    assert 'id="balance-summary"' in first.text and "£50.00" in first.text
    tag = first.headers["ETag"].strip('"')
    # The fragment polls with its own validator: the next poll asks with it.
    assert f'"If-None-Match": "\\"{tag}\\""' in first.text
    assert 'hx-trigger="every' in first.text
    assert conditional_get(client, SUMMARY, tag, HTMX).status_code == 304

    api_charge(client, alice["api"])
    charged = conditional_get(client, SUMMARY, tag, HTMX)
    assert charged.status_code == 200 and "£48.75" in charged.text
    tag = charged.headers["ETag"].strip('"')
    assert conditional_get(client, SUMMARY, tag, HTMX).status_code == 304

    credit(db, alice["user"].account_id, 1000, "payment:1")
    credited = conditional_get(client, SUMMARY, tag, HTMX)
    assert credited.status_code == 200 and "£58.75" in credited.text


def test_the_live_figures_url_without_htmx_shows_the_page(client, alice):
    response = client.get(SUMMARY)
    assert response.status_code == 200 and "<html" in response.text
    assert "Balance over the last 90 days" in response.text


def test_a_customer_cannot_probe_another_customers_etag(client, db, alice, app):
    # Bob: same reseller, same currency, same balance, same figures.
    bob = make_user(
        db, account=make_account(db, reseller=alice["user"].account.reseller, number="700002")
    )
    credit(db, bob.account_id, 5000, "open")
    other = app.test_client()
    login(other, bob.email)
    other.get("/billing/balance")
    bobs = other.get(SUMMARY, headers=HTMX)
    alices = client.get(SUMMARY, headers=HTMX)
    assert "£50.00" in bobs.text and "£50.00" in alices.text
    assert bobs.headers["ETag"] != alices.headers["ETag"]
    for url, headers in ((SUMMARY, HTMX), ("/billing/balance", {}), ("/billing/balance", HTMX)):
        bobs_tag = other.get(url, headers=headers).headers["ETag"].strip('"')
        assert conditional_get(client, url, bobs_tag, headers).status_code == 200
        assert conditional_get(other, url, bobs_tag, headers).status_code == 304


def test_a_new_session_gets_a_new_page_validator(client, alice, app):
    tag = client.get("/billing/balance").headers["ETag"].strip('"')
    # The page holds a CSRF token of this session: another session never reuses it.
    other = app.test_client()
    login(other, alice["user"].email)
    other.get("/billing/balance")
    assert conditional_get(other, "/billing/balance", tag).status_code == 200


def test_the_add_credit_panel_is_never_cached(client, alice):
    panel = client.get("/billing/balance/add-credit", headers=HTMX)
    assert panel.status_code == 200 and 'id="add-credit"' in panel.text
    assert panel.headers["Cache-Control"] == "no-store" and "ETag" not in panel.headers


def test_someone_signed_out_gets_no_figures(app, alice):
    stranger = app.test_client()
    assert stranger.get(SUMMARY, headers=HTMX).status_code in (204, 302)


def test_an_admin_without_account_is_not_shown_a_balance(app, db):
    reseller = make_reseller(db)
    from portal.models import Role

    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=reseller)
    db.commit()
    client = app.test_client()
    login(client, admin.email)
    assert client.get(SUMMARY, headers=HTMX).status_code in (302, 403, 404)
