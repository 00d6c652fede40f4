"""Top-up settings: automatic top-up on/off, threshold and amount within the limits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.models import (
    AttemptStatus,
    AutoRechargeAttempt,
    AutoRechargeSetting,
    CardRole,
    PaymentCard,
    utcnow,
)
from tests.payments.conftest import HTMX


def give_primary_card(db, account_id: int, role: CardRole = CardRole.PRIMARY) -> PaymentCard:
    # Settings never talk to Stripe, so a recorded card is enough here.
    card = PaymentCard(
        account_id=account_id,
        stripe_payment_method_id=f"pm_test_{account_id}_{role.value}",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2034,
        role=role,
    )
    db.add(card)
    db.commit()
    return card


def save(client, htmx=True, **fields):
    data = {"threshold": "10.00", "amount": "25.00", **fields}
    return client.post("/billing/topup-settings", data=data, headers=HTMX if htmx else {})


def stored(db, account_id):
    db.rollback()
    return db.get(AutoRechargeSetting, account_id)


def test_page_shows_the_fields_with_defaults(client, signed_in):
    response = client.get("/billing/topup-settings")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    labels = ["Automatic top-up", "My balance hit the threshold of", "Top up the following amount"]
    assert all(label in html for label in labels)
    assert '<button type="submit">Save</button>' in html
    assert 'value="5.00"' in html and 'value="20.00"' in html
    assert "Add a payment card" in html
    assert "No automatic top-ups yet" in html


def test_enable_with_a_primary_card_saves(client, db, signed_in):
    give_primary_card(db, signed_in.account_id)
    response = save(client, enabled="y", threshold="0", amount="1,000.00")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Top-up settings saved" in html and "Automatic top-up is on" in html
    setting = stored(db, signed_in.account_id)
    assert (setting.enabled, setting.threshold_minor, setting.amount_minor) == (True, 0, 100000)


def test_reenabling_forgets_earlier_failures(client, db, signed_in):
    give_primary_card(db, signed_in.account_id)
    db.add(
        AutoRechargeSetting(
            account_id=signed_in.account_id,
            enabled=False,
            threshold_minor=100,
            amount_minor=500,
            failure_count=3,
            next_attempt_at=utcnow() + timedelta(hours=1),
        )
    )
    db.commit()
    save(client, enabled="y", amount="5")
    setting = stored(db, signed_in.account_id)
    assert (setting.enabled, setting.failure_count, setting.next_attempt_at) == (True, 0, None)
    assert setting.amount_minor == 500


def test_disable_and_save_without_a_card(client, db, signed_in):
    response = save(client, htmx=False)
    assert response.status_code == 200
    setting = stored(db, signed_in.account_id)
    assert (setting.enabled, setting.threshold_minor, setting.amount_minor) == (False, 1000, 2500)


def test_enabling_without_a_primary_card_is_refused(client, db, signed_in):
    give_primary_card(db, signed_in.account_id, role=CardRole.SECONDARY)
    response = save(client, enabled="y")
    assert response.status_code == 200
    assert "make it primary before turning on automatic top-up" in response.get_data(as_text=True)
    assert stored(db, signed_in.account_id) is None
    assert save(client, htmx=False, enabled="y").status_code == 422


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "-5", "Enter a positive amount"),
        ("amount", "0", "Enter an amount greater than zero"),
        ("amount", "NaN", "Enter a plain number"),
        ("amount", "Infinity", "Enter a plain number"),
        ("amount", "1e3", "Enter a plain number"),
        ("amount", "", "Enter an amount"),
        ("amount", "5.001", "at most 2 decimals"),
        ("amount", "4.99", "from £5.00 to £1,000.00"),
        ("amount", "1000.01", "from £5.00 to £1,000.00"),
        ("amount", "99999999999999999999", "Enter an amount up to"),
        ("threshold", "-1", "Enter a positive amount"),
        ("threshold", "NaN", "Enter a plain number"),
        ("threshold", "1.234", "at most 2 decimals"),
        ("threshold", "100000.01", "Enter a threshold from £0.00 to £100,000.00"),
        ("threshold", "1" * 40, "Enter a plain number"),
    ],
)
def test_bad_amounts_are_refused_and_nothing_is_saved(client, db, signed_in, field, value, message):
    give_primary_card(db, signed_in.account_id)
    response = save(client, enabled="y", **{field: value})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in html
    assert 'class="field-error"' in html
    assert stored(db, signed_in.account_id) is None


def test_last_ten_attempts_are_listed_newest_first(client, db, signed_in):
    card = give_primary_card(db, signed_in.account_id)
    now = utcnow()
    for i in range(12):
        db.add(
            AutoRechargeAttempt(
                account_id=signed_in.account_id,
                amount_minor=1000 + i,
                card_id=card.id,
                status=AttemptStatus.FAILED if i == 11 else AttemptStatus.SUCCEEDED,
                message="Your card was declined." if i == 11 else "",
                idempotency_key=f"attempt-{i}",
                created_at=now - timedelta(minutes=60 - i),
            )
        )
    db.commit()
    html = client.get("/billing/topup-settings").get_data(as_text=True)
    assert html.count("Visa ending 4242") == 10
    assert "£10.11" in html and "£10.02" in html and "£10.01" not in html
    assert html.index("£10.11") < html.index("£10.10")
    assert "Your card was declined." in html and "badge-failed" in html


def test_other_accounts_attempts_are_not_shown(client, db, signed_in):
    from tests.builders import make_customer

    other = make_customer(db)
    db.add(
        AutoRechargeAttempt(
            account_id=other.account_id,
            amount_minor=4321,
            status=AttemptStatus.SUCCEEDED,
            idempotency_key="other-1",
        )
    )
    db.commit()
    assert "£43.21" not in client.get("/billing/topup-settings").get_data(as_text=True)
