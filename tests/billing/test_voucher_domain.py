"""redeem_voucher called directly: PIN length bounds, expiry and amount edges, the claim of
exactly one card, and what the credit records (issue 16: found unguarded by mutation testing)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal import vouchers
from portal.domain import PermissionDenied
from portal.models import (
    Account,
    BatchStatus,
    CardStatus,
    LedgerEntry,
    RedeemFailure,
    TopupCard,
    TopupCardBatch,
    utcnow,
)
from portal.vouchers import GENERIC_ERROR, VoucherRejected, redeem_voucher
from tests.billing.plan_helpers import make_card
from tests.builders import make_customer


@pytest.fixture
def customer(app, db):
    user = make_customer(db)
    db.commit()
    with app.app_context():  # the PIN vault is the app's
        yield user, db.get(Account, user.account_id)


def redeem(db, customer, pin):
    user, account = customer
    return redeem_voucher(db, user=user, account=account, pin=pin, client_ip="10.0.0.1")


def rejected(db, customer, pin):
    with pytest.raises(VoucherRejected) as refused:
        redeem(db, customer, pin)
    return str(refused.value), refused.value.field


@pytest.mark.parametrize("pin", ["1234", "1" * 40])
def test_pins_of_4_and_40_digits_are_redeemable(db, customer, pin):
    make_card(db, reseller_id=customer[1].reseller_id, pin=pin, amount_minor=700)
    db.commit()
    assert redeem(db, customer, pin).amount_minor == 700


@pytest.mark.parametrize("pin", ["123", "1" * 41, "12a4"])
def test_pins_outside_the_bounds_are_rejected_even_if_a_card_has_them(db, customer, pin):
    make_card(db, reseller_id=customer[1].reseller_id, pin=pin)
    db.commit()
    assert rejected(db, customer, pin) == (GENERIC_ERROR, "pin")
    db.expire_all()
    assert db.scalar(select(RedeemFailure.created_at)) is not None


def test_a_card_expiring_this_instant_is_rejected_and_the_failure_is_dated_now(
    db, customer, monkeypatch
):
    now = utcnow().replace(microsecond=0) - timedelta(hours=1)
    monkeypatch.setattr(vouchers, "utcnow", lambda: now)
    card = make_card(db, reseller_id=customer[1].reseller_id, pin="55501", expires_at=now)
    db.commit()
    assert rejected(db, customer, "55501") == (GENERIC_ERROR, "pin")
    db.expire_all()
    assert db.get(TopupCard, card.id).status == CardStatus.NEW
    assert db.scalar(select(RedeemFailure.created_at)) == now


def test_a_card_claimed_by_someone_else_meanwhile_is_not_credited_twice(db, customer, monkeypatch):
    """The claim is conditional on the card still being new (the race of two redeemers)."""
    card = make_card(db, reseller_id=customer[1].reseller_id, pin="55507")
    db.commit()
    find_card = vouchers._find_card

    def found_then_claimed_elsewhere(session, *args):
        found = find_card(session, *args)
        # What the other redeemer's committed claim looks like from here (on PostgreSQL the
        # UPDATE waits for it; SQLite's BEGIN IMMEDIATE serialises the whole attempt).
        session.execute(update(TopupCard).where(TopupCard.id == card.id).values(status="activated"))
        return found

    monkeypatch.setattr(vouchers, "_find_card", found_then_claimed_elsewhere)
    assert rejected(db, customer, "55507") == (GENERIC_ERROR, "pin")
    db.expire_all()
    assert db.scalar(select(LedgerEntry.id)) is None


def test_a_used_pin_printed_again_on_a_new_card_credits_the_new_card(db, customer):
    """PINs are unique among new cards only: the lookup must skip the activated one."""
    reseller_id = customer[1].reseller_id
    used = make_card(db, reseller_id=reseller_id, pin="55508", amount_minor=100)
    used.status = CardStatus.ACTIVATED
    db.flush()
    fresh = make_card(db, reseller_id=reseller_id, pin="55508", amount_minor=300)
    db.commit()
    assert redeem(db, customer, "55508").card_serial == fresh.serial


@pytest.mark.parametrize("amount", [0, 1])
def test_only_cards_worth_something_are_redeemable(db, customer, amount):
    make_card(db, reseller_id=customer[1].reseller_id, pin="55502", amount_minor=amount)
    db.commit()
    if amount:
        assert redeem(db, customer, "55502").balance_after_minor == 1
    else:
        assert rejected(db, customer, "55502") == (GENERIC_ERROR, "pin")


def test_a_card_of_an_unfinished_batch_is_not_redeemable(db, customer):
    card = make_card(db, reseller_id=customer[1].reseller_id, pin="55503")
    batch = TopupCardBatch(
        reseller_id=card.reseller_id,
        series="T",
        quantity=2,
        amount_minor=card.amount_minor,
        currency="GBP",
        pin_length=5,
        status=BatchStatus.RUNNING,
    )
    db.add(batch)
    db.flush()
    card.batch_id = batch.id
    db.commit()
    assert rejected(db, customer, "55503") == (GENERIC_ERROR, "pin")


def test_redeeming_claims_only_that_card_and_records_the_credit(db, customer):
    user, account = customer
    card = make_card(db, reseller_id=account.reseller_id, pin="55504", amount_minor=900)
    other = make_card(db, reseller_id=account.reseller_id, pin="55505", amount_minor=400)
    db.commit()
    result = redeem(db, customer, "555 04")
    assert (result.card_serial, result.amount_minor, result.currency) == (card.serial, 900, "GBP")
    db.expire_all()
    assert db.get(TopupCard, other.id).status == CardStatus.NEW
    assert db.get(TopupCard, card.id).activated_account_id == account.id
    entry = db.scalar(select(LedgerEntry).where(LedgerEntry.account_id == account.id))
    assert (entry.reference, entry.actor_user_id, entry.currency) == (card.serial, user.id, "GBP")


def test_a_user_without_the_permission_is_told_so(db, customer):
    user, _ = customer
    user.can_redeem_vouchers = False
    db.commit()
    with pytest.raises(PermissionDenied, match=r"^You are not allowed to redeem vouchers\.$"):
        redeem(db, customer, "55506")
