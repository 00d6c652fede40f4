"""The ledger's newer edges: entry times given by a billing run, reserve use at a given
moment, and the note of changed funds that the after-change checks read (mutation gaps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal import ledger
from portal.ledger import FUNDS_CHANGED
from portal.models import EntryKind, utcnow
from tests.builders import make_account, make_reseller


def account(db):
    made = make_account(db, reseller=make_reseller(db))
    db.flush()
    return made


def post(db, acct, amount, key, **extra):
    return ledger.post_entry(
        db,
        account_id=acct.id,
        kind=extra.pop("kind", EntryKind.TOPUP),
        amount_minor=amount,
        description="x",
        idempotency_key=key,
        **extra,
    )


def test_an_entry_takes_the_time_it_is_posted_for_else_now(db):
    acct = account(db)
    when = datetime(2030, 3, 15, 1, tzinfo=UTC)
    assert post(db, acct, 100, "a", at=when).entry.created_at == when
    before = utcnow()
    stamped = post(db, acct, 100, "b").entry.created_at
    assert before - timedelta(seconds=1) <= stamped <= utcnow() + timedelta(seconds=1)


def test_reserve_is_used_as_it_stood_at_the_moment_given(db):
    acct = account(db)
    then = utcnow() - timedelta(days=10)
    ledger.grant_reserve(
        db,
        account=acct,
        amount_minor=500,
        source="downgrade",
        expires_at=then + timedelta(days=1),  # expired by now, usable then
        idempotency_key="g",
        at=then,
    )
    assert ledger.consume_reserve(db, account=acct, amount_minor=300, purpose="p") == 0
    taken = ledger.consume_reserve(db, account=acct, amount_minor=300, purpose="p", now=then)
    assert taken == 300


def test_every_entry_but_usage_notes_the_account_and_whether_funds_went_down(db):
    acct, other = account(db), account(db)
    db.info.pop(FUNDS_CHANGED, None)
    post(db, acct, -50, "u", kind=EntryKind.USAGE)  # the switch's path checks on its own
    assert FUNDS_CHANGED not in db.info or acct.id not in db.info[FUNDS_CHANGED]
    post(db, acct, 100, "credit")
    assert db.info[FUNDS_CHANGED] == {acct.id: False}  # went up
    post(db, acct, -10, "debit", kind=EntryKind.ADJUSTMENT)
    assert db.info[FUNDS_CHANGED] == {acct.id: True}  # went down at some point
    post(db, acct, 100, "credit-2")
    assert db.info[FUNDS_CHANGED] == {acct.id: True}  # stays down once noted
    post(db, other, 0, "nothing", kind=EntryKind.ADDON)  # an add-on paid from reserve credit
    assert db.info[FUNDS_CHANGED] == {acct.id: True, other.id: False}  # 0 is not a decrease
    post(db, other, 100, "other")
    assert db.info[FUNDS_CHANGED] == {acct.id: True, other.id: False}


def test_noting_a_change_without_an_entry(db):
    db.info.pop(FUNDS_CHANGED, None)
    ledger.note_funds_changed(db, 7)  # a credit limit lowered: down by default
    ledger.note_funds_changed(db, 8, decreased=False)
    ledger.note_funds_changed(db, 8, decreased=False)
    assert db.info[FUNDS_CHANGED] == {7: True, 8: False}
    ledger.note_funds_changed(db, 8, decreased=True)
    ledger.note_funds_changed(db, 8, decreased=False)
    assert db.info[FUNDS_CHANGED] == {7: True, 8: True}
    db.info.pop(FUNDS_CHANGED)
