from datetime import timedelta

from portal import ledger
from portal.models import GrantStatus, utcnow
from tests.builders import make_account, make_reseller


def _grant(db, account, amount, expires_in_days, key):
    return ledger.grant_reserve(
        db,
        account=account,
        amount_minor=amount,
        source="test",
        expires_at=utcnow() + timedelta(days=expires_in_days),
        idempotency_key=key,
    )


def test_consume_takes_soonest_expiring_first_and_records_uses(db):
    account = make_account(db, reseller=make_reseller(db))
    late, soon = _grant(db, account, 500, 20, "late"), _grant(db, account, 300, 5, "soon")
    taken = ledger.consume_reserve(db, account=account, amount_minor=400, purpose="add-on")
    db.commit()
    assert taken == 400
    assert (soon.remaining_minor, soon.status) == (0, GrantStatus.USED)
    assert late.remaining_minor == 400
    assert [use.amount_minor for use in soon.uses] == [300]


def test_expiry_records_the_remainder_even_on_loaded_objects(db):
    account = make_account(db, reseller=make_reseller(db))
    grant = _grant(db, account, 700, 1, "g")
    ledger.consume_reserve(db, account=account, amount_minor=200, purpose="add-on")
    assert ledger.expire_reserve(db, now=utcnow() + timedelta(days=2)) == 1
    db.commit()
    assert (grant.status, grant.remaining_minor, grant.expired_minor) == (
        GrantStatus.EXPIRED,
        0,
        500,
    )
    assert ledger.usable_reserve(db, account.id) == []


def test_granting_twice_with_one_key_grants_once(db):
    account = make_account(db, reseller=make_reseller(db))
    first, again = _grant(db, account, 100, 30, "k"), _grant(db, account, 100, 30, "k")
    assert first.id == again.id
