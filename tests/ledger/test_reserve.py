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


# --- edges found by mutation testing (issue 16) ----------------------------------------


def test_one_accounts_use_never_touches_anothers_grants(db):
    reseller = make_reseller(db)
    a, b = make_account(db, reseller=reseller), make_account(db, reseller=reseller)
    b_grant = _grant(db, b, 500, 5, "b")
    assert ledger.consume_reserve(db, account=a, amount_minor=300, purpose="add-on") == 0
    assert ledger.usable_reserve(db, a.id) == []
    db.commit()
    assert (b_grant.remaining_minor, b_grant.status, b_grant.uses) == (500, GrantStatus.ACTIVE, [])


def test_the_same_key_on_two_accounts_makes_two_grants(db):
    reseller = make_reseller(db)
    a, b = make_account(db, reseller=reseller), make_account(db, reseller=reseller)
    on_a, on_b = _grant(db, a, 100, 30, "shared"), _grant(db, b, 200, 30, "shared")
    db.commit()
    assert on_a.id != on_b.id
    assert (on_b.account_id, on_b.amount_minor) == (b.id, 200)
    assert [g.id for g in ledger.usable_reserve(db, b.id)] == [on_b.id]


def test_consumption_stops_at_the_amount_and_returns_it_as_an_int(db):
    account = make_account(db, reseller=make_reseller(db))
    first, second = _grant(db, account, 500, 5, "first"), _grant(db, account, 500, 10, "second")
    taken = ledger.consume_reserve(db, account=account, amount_minor=200, purpose="add-on")
    db.commit()
    assert taken == 200 and type(taken) is int
    assert (first.remaining_minor, second.remaining_minor, second.uses) == (300, 500, [])


def test_a_grant_with_one_unit_left_is_usable(db):
    account = make_account(db, reseller=make_reseller(db))
    grant = _grant(db, account, 10, 5, "g")
    ledger.consume_reserve(db, account=account, amount_minor=9, purpose="add-on")
    assert ledger.usable_reserve(db, account.id) == [grant]
    assert ledger.consume_reserve(db, account=account, amount_minor=5, purpose="add-on") == 1
    db.commit()
    assert (grant.remaining_minor, grant.status) == (0, GrantStatus.USED)


def test_an_empty_or_inactive_grant_is_not_usable(db):
    """Defence in depth: only ACTIVE grants with something left are offered."""
    account = make_account(db, reseller=make_reseller(db))
    _grant(db, account, 0, 5, "empty")
    stale = _grant(db, account, 400, 5, "stale")
    stale.status = GrantStatus.EXPIRED  # remaining left non-zero on purpose
    db.flush()
    assert ledger.usable_reserve(db, account.id) == []
    assert ledger.consume_reserve(db, account=account, amount_minor=100, purpose="x") == 0


def test_a_grant_is_unusable_and_expires_at_its_exact_expiry(db):
    account = make_account(db, reseller=make_reseller(db))
    grant = _grant(db, account, 700, 1, "g")
    at = grant.expires_at
    assert ledger.usable_reserve(db, account.id, now=at - timedelta(microseconds=1)) == [grant]
    assert ledger.usable_reserve(db, account.id, now=at) == []
    assert ledger.expire_reserve(db, now=at - timedelta(microseconds=1)) == 0
    assert ledger.expire_reserve(db, now=at) == 1
    db.commit()
    assert (grant.status, grant.expired_minor, grant.expired_at) == (GrantStatus.EXPIRED, 700, at)


def test_expiry_leaves_used_up_grants_alone(db):
    account = make_account(db, reseller=make_reseller(db))
    used = _grant(db, account, 300, 1, "used")
    ledger.consume_reserve(db, account=account, amount_minor=300, purpose="add-on")
    db.commit()
    assert ledger.expire_reserve(db, now=utcnow() + timedelta(days=2)) == 0
    db.commit()
    assert (used.status, used.expired_minor, used.expired_at) == (GrantStatus.USED, 0, None)


def test_source_and_purpose_are_cut_to_their_column_lengths(db):
    account = make_account(db, reseller=make_reseller(db))
    grant = ledger.grant_reserve(
        db,
        account=account,
        amount_minor=100,
        source="s" * 250,
        expires_at=utcnow() + timedelta(days=1),
        idempotency_key="k",
    )
    ledger.consume_reserve(db, account=account, amount_minor=10, purpose="p" * 250)
    db.commit()
    db.expire_all()
    assert (len(grant.source), len(grant.uses[0].purpose)) == (200, 200)
