"""transfer_funds called directly: each refusal's exact message and field, the replay, and
what both entries record (issue 16: mutation testing found these unguarded)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal import transfers
from portal.domain import ValidationFailed
from portal.models import Account, AccountStatus, EntryKind, LedgerEntry, TransferSetting
from portal.transfers import TransferRefused
from tests.billing.plan_helpers import fund
from tests.builders import make_account, make_reseller, make_user

NUMBER_32 = "3" * 32


@pytest.fixture
def parties(db):
    reseller = make_reseller(db)
    sender = make_account(db, reseller=reseller, transfers=TransferSetting.YES, number="400001")
    recipient = make_account(
        db, reseller=reseller, transfers=TransferSetting.YES, number="400002", name="Rita"
    )
    user = make_user(db, account=sender)
    fund(db, sender, 1000)
    db.commit()
    return sender, recipient, user


def send(db, sender, number="400002", amount=250, key="k", actor=None):
    return transfers.transfer_funds(
        db,
        sender_account=sender,
        recipient_number=number,
        amount_minor=amount,
        actor_user_id=actor,
        idempotency_key=key,
    )


def refusal(db, sender, error=ValidationFailed, **kwargs):
    with pytest.raises(error) as refused:
        send(db, sender, **kwargs)
    return str(refused.value), refused.value.field


UNKNOWN = "No account with that number can receive transfers from you. Check the number."


@pytest.mark.parametrize("number", ["", "   ", None, "999999", "3" * 33])
def test_unknown_empty_or_overlong_numbers_are_refused_on_the_recipient_field(db, parties, number):
    assert refusal(db, parties[0], number=number) == (UNKNOWN, "recipient")


def test_the_number_is_trimmed_and_may_have_32_characters(db, parties):
    sender = parties[0]
    longest = make_account(
        db, reseller=sender.reseller, transfers=TransferSetting.YES, number=NUMBER_32
    )
    db.commit()
    assert send(db, sender, number=f"  {NUMBER_32} ").recipient_number == NUMBER_32
    assert db.get(Account, longest.id).balance_minor == 250


def test_sending_to_yourself_is_refused(db, parties):
    assert refusal(db, parties[0], number="400001") == (
        "You cannot transfer to your own account.",
        "recipient",
    )


@pytest.mark.parametrize("amount", [0, -5])
def test_amounts_must_be_positive(db, parties, amount):
    assert refusal(db, parties[0], amount=amount) == (
        "Enter an amount greater than zero.",
        "amount",
    )


def test_a_sender_not_allowed_is_refused_without_a_field(db, parties):
    sender = parties[0]
    sender.transfers = TransferSetting.NO
    db.commit()
    assert refusal(db, sender, error=TransferRefused) == (
        "Your account is not allowed to transfer funds.",
        None,
    )


def test_a_closed_recipient_is_refused_on_the_recipient_field(db, parties):
    sender, recipient, _ = parties
    recipient.status = AccountStatus.SUSPENDED
    db.commit()
    assert refusal(db, sender, error=TransferRefused) == (
        "Account 400002 is not allowed to receive transfers.",
        "recipient",
    )


def test_another_currency_is_refused_on_the_recipient_field(db, parties):
    sender = parties[0]
    make_account(
        db, reseller=sender.reseller, transfers=TransferSetting.YES, number="400003", currency="EUR"
    )
    db.commit()
    assert refusal(db, sender, error=TransferRefused, number="400003") == (
        "Account 400003 is in EUR; transfers need the same currency.",
        "recipient",
    )


def test_too_little_money_is_refused_on_the_amount_field(db, parties):
    assert refusal(db, parties[0], error=TransferRefused, amount=1001) == (
        "Your available funds (£10.00) do not cover £10.01.",
        "amount",
    )


def test_a_replay_answers_with_the_first_transfer(db, parties):
    sender, recipient, user = parties
    first = send(db, sender, amount=300, key="same", actor=user.id)
    fund(db, sender, 5000, key="more")
    db.commit()
    again = send(db, sender, amount=999, key="same", actor=user.id)
    assert (first.replayed, first.amount_minor, first.sender_balance_after_minor) == (
        False,
        300,
        700,
    )
    assert (again.replayed, again.amount_minor, again.sender_balance_after_minor) == (
        True,
        300,
        700,
    )
    db.expire_all()
    assert db.get(Account, recipient.id).balance_minor == 300


def test_the_same_key_to_another_recipient_is_still_one_transfer(db, parties):
    sender, recipient, _ = parties
    other = make_account(
        db, reseller=sender.reseller, transfers=TransferSetting.YES, number="400004"
    )
    db.commit()
    send(db, sender, amount=100, key="same")
    assert send(db, sender, number="400004", amount=100, key="same").replayed is True
    db.expire_all()
    assert (
        db.get(Account, recipient.id).balance_minor,
        db.get(Account, other.id).balance_minor,
    ) == (
        100,
        0,
    )


def test_both_entries_record_the_actor_and_a_bounded_key(db, parties):
    sender, recipient, user = parties
    key = "k" * 150
    result = send(db, sender, amount=100, key=key, actor=user.id)
    assert (result.recipient_name, result.currency, result.replayed) == ("Rita", "GBP", False)
    entries = db.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.kind.in_([EntryKind.TRANSFER_OUT, EntryKind.TRANSFER_IN]))
        .order_by(LedgerEntry.id)
    ).all()
    out, into = entries
    assert (out.account_id, out.amount_minor, out.actor_user_id) == (sender.id, -100, user.id)
    assert (into.account_id, into.amount_minor, into.actor_user_id) == (recipient.id, 100, user.id)
    assert into.idempotency_key == f"transfer-in:{sender.id}:{key}"[:120]
    assert len(into.idempotency_key) == 120


# --- review_transfer: the first step, same checks, nothing written -------------------------------


def review(db, sender, number="400002", amount=250):
    return transfers.review_transfer(
        db, sender_account=sender, recipient_number=number, amount_minor=amount
    )


@pytest.mark.parametrize("amount", [0, -5, True, 1.5])
def test_a_review_refuses_amounts_that_are_not_positive_whole_minor_units(db, parties, amount):
    with pytest.raises(ValidationFailed) as refused:
        review(db, parties[0], amount=amount)
    assert (str(refused.value), refused.value.field) == (
        "Enter an amount greater than zero.",
        "amount",
    )


def test_a_review_shows_both_accounts_and_the_funds_left_and_writes_nothing(db, parties):
    sender, recipient, _ = parties
    assert review(db, sender, amount=1) == transfers.TransferReview(
        "400001", sender.name, "400002", "Rita", 1, "GBP", 999
    )
    assert review(db, sender, amount=1000).sender_available_after_minor == 0
    db.rollback()
    assert db.scalar(select(LedgerEntry).where(LedgerEntry.account_id == recipient.id)) is None
    assert db.get(Account, sender.id).balance_minor == 1000
