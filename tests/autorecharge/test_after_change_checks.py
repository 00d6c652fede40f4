"""Auto-recharge and funds warnings run after EVERY change of available funds.

Not only after the switch's debits: plan upgrades, add-ons, transfers out, adjustments,
refunds, chargebacks (every ledger kind but usage, which the API queues itself), and
changes without a ledger entry (a temporary credit limit expiring, a permanent limit
lowered). Each warning goes out once per crossing and re-arms when funds rise above it.
Before this, those changes waited for the five-minute sweep.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from portal import credit, ledger, transfers
from portal import db as portal_db
from portal.models import (
    Account,
    AutoRechargeSetting,
    BillingModel,
    EntryKind,
    Notice,
    Payment,
    PaymentPurpose,
    PaymentStatus,
    Role,
    TransferSetting,
    User,
    utcnow,
)
from tests.builders import make_account, make_reseller, make_user
from tests.payments.conftest import post_event

WARNING = "warning: available funds"


@pytest.fixture
def app_config(stripe_config):
    return {**stripe_config, "AFTER_DEBIT_CHECKS": "inline"}


@pytest.fixture
def world(db):
    reseller = make_reseller(db)
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=reseller)
    account = make_account(
        db, reseller=reseller, warning_thresholds="5.00", transfers=TransferSetting.YES
    )
    other = make_account(db, reseller=reseller, transfers=TransferSetting.YES)
    ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=1000,
        description="Opening balance",
        idempotency_key="open",
    )
    db.commit()
    return {"account": account.id, "other": other.number, "admin": admin.id}


def warnings(db, account_id: int) -> int:
    db.rollback()
    notices = db.query(Notice).filter(Notice.account_id == account_id)
    return notices.filter(Notice.message.contains(WARNING)).count()


def in_app(app, action):
    """Run a domain operation as a request or job would (its app context ends afterwards)."""
    with app.app_context():
        session = portal_db.session()
        action(session)


def _post(kind: EntryKind, amount: int):
    def action(session):
        ledger.post_entry(
            session,
            account_id=session.info["account_id"],
            kind=kind,
            amount_minor=amount,
            description=f"{kind} in a test",
            idempotency_key=uuid.uuid4().hex,
        )
        session.commit()

    return action


@pytest.mark.parametrize("kind", [k for k in EntryKind if k != EntryKind.USAGE])
def test_every_debit_kind_runs_the_warning_check_at_once(app, db, world, kind):
    def debit(session):
        session.info["account_id"] = world["account"]
        _post(kind, -600)(session)

    in_app(app, debit)
    assert warnings(db, world["account"]) == 1


def test_admin_adjustment_and_transfer_out_warn_once_per_crossing_and_rearm(app, db, world):
    def adjust(amount):
        def action(session):
            credit.adjust_balance(
                session,
                account=session.get(Account, world["account"]),
                amount_minor=amount,
                order_number="T-1",
                reason="test",
                actor=session.get(User, world["admin"]),
                idempotency_key=uuid.uuid4().hex,
            )

        return action

    def transfer_out(session):
        transfers.transfer_funds(
            session,
            sender_account=session.get(Account, world["account"]),
            recipient_number=world["other"],
            amount_minor=300,
            actor_user_id=None,
            idempotency_key=uuid.uuid4().hex,
        )

    in_app(app, adjust(-400))  # 10.00 -> 6.00: above the threshold
    assert warnings(db, world["account"]) == 0
    in_app(app, transfer_out)  # 6.00 -> 3.00: crosses 5.00
    assert warnings(db, world["account"]) == 1
    in_app(app, adjust(-100))  # still below: no second warning for the same crossing
    assert warnings(db, world["account"]) == 1
    in_app(app, adjust(+1000))  # back above: re-armed at once
    db.rollback()
    assert db.get(Account, world["account"]).warnings_fired == ""
    in_app(app, adjust(-1000))  # a new crossing: a new warning
    assert warnings(db, world["account"]) == 2


def test_refund_and_chargeback_webhooks_run_the_checks(app, client, db, world):
    payment = Payment(
        account_id=world["account"],
        purpose=PaymentPurpose.TOPUP,
        amount_minor=800,
        currency="GBP",
        idempotency_key=uuid.uuid4().hex,
        status=PaymentStatus.PENDING,
    )
    db.add(payment)
    db.commit()
    intent = {
        "id": "pi_checks",
        "object": "payment_intent",
        "latest_charge": "ch_checks",
        "metadata": {"payment_id": str(payment.id)},
    }
    post_event(client, "payment_intent.succeeded", intent)  # 10.00 + 8.00
    charge = {"id": "ch_checks", "payment_intent": "pi_checks", "amount_refunded": 800}
    post_event(client, "charge.refunded", charge)  # back to 10.00
    assert warnings(db, world["account"]) == 0
    dispute = {"id": "dp_checks", "charge": "ch_checks", "amount": 800, "reason": "fraudulent"}
    post_event(client, "charge.dispute.funds_withdrawn", dispute)  # 2.00: crosses 5.00
    assert warnings(db, world["account"]) == 1


@pytest.fixture
def postpaid(db):
    reseller = make_reseller(db)
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=reseller)
    account = make_account(
        db,
        reseller=reseller,
        model=BillingModel.POSTPAID,
        credit_limit_minor=1000,
        warning_thresholds="5.00",
        temp_increase_minor=5000,
        temp_increase_valid_until=utcnow() + timedelta(hours=1),
    )
    ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.USAGE,
        amount_minor=-800,
        description="Calls",
        idempotency_key="calls",
    )
    db.commit()
    return {"account": account.id, "admin": admin.id}


def test_a_temporary_limit_expiring_warns_without_any_ledger_entry(app, db, postpaid):
    from portal.jobs import revert_credit_limits

    assert warnings(db, postpaid["account"]) == 0  # 10.00 + 50.00 - 8.00 available
    later = utcnow() + timedelta(hours=2)
    in_app(app, lambda session: revert_credit_limits(session, later))  # 2.00 available
    assert warnings(db, postpaid["account"]) == 1


def test_a_lowered_permanent_limit_warns_without_any_ledger_entry(app, db, postpaid):
    def lower(session):
        account = session.get(Account, postpaid["account"])
        actor = session.get(User, postpaid["admin"])
        credit.remove_temporary_increase(session, account=account, actor=actor)

    in_app(app, lower)  # 10.00 - 8.00 = 2.00 available: crossed
    assert warnings(db, postpaid["account"]) == 1


@pytest.mark.stripe
def test_an_adjustment_starts_the_automatic_top_up_at_once(app, db, world):
    from tests.autorecharge.test_autorecharge import GOOD, add_card

    add_card(app, world["account"], GOOD)
    setting = AutoRechargeSetting(
        account_id=world["account"], enabled=True, threshold_minor=500, amount_minor=2000
    )
    db.add(setting)
    db.commit()

    def debit(session):
        session.info["account_id"] = world["account"]
        _post(EntryKind.ADJUSTMENT, -600)(session)

    in_app(app, debit)  # 10.00 -> 4.00, at or below 5.00: charged at once, not in 5 minutes
    db.rollback()
    assert db.get(Account, world["account"]).balance_minor == 400 + 2000
    assert db.query(Payment).one().purpose == PaymentPurpose.AUTO_RECHARGE
