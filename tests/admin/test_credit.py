"""Balance & credits rules (SPEC 5 and 11), tested on the domain functions directly."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import credit, ledger
from portal.credit import CreditError, Threshold
from portal.models import (
    AuditLog,
    BillingModel,
    CreditChangeKind,
    CreditLimitChange,
    EntryKind,
    LedgerEntry,
    TransferSetting,
    UnallocatedPayment,
    utcnow,
)
from tests.admin.helpers import make_tenant


@pytest.fixture
def acme(db):
    tenant = make_tenant(db, name="Acme", admin_email="admin@acme.test")
    db.commit()
    return tenant


def history(db, account):
    return db.scalars(
        select(CreditLimitChange)
        .where(CreditLimitChange.account_id == account.id)
        .order_by(CreditLimitChange.id)
    ).all()


def audits(db, action):
    return db.scalars(select(AuditLog).where(AuditLog.action == action)).all()


# --- temporary increase ------------------------------------------------------------------


def test_increase_by_amount_raises_effective_limit_and_writes_history(db, acme):
    until = utcnow() + timedelta(days=7)
    credit.set_temporary_increase(
        db, account=acme.postpaid, amount_minor=5000, valid_until=until, actor=acme.admin
    )
    db.refresh(acme.postpaid)
    assert acme.postpaid.temp_increase_minor == 5000
    assert ledger.effective_credit_limit(acme.postpaid) == 25000
    assert ledger.available_funds(acme.postpaid) == 25000
    [row] = history(db, acme.postpaid)
    assert row.kind == CreditChangeKind.TEMPORARY
    assert (row.old_value, row.new_value) == ("£200.00", "£250.00 (+£50.00)")
    assert row.actor_user_id == acme.admin.id
    assert row.valid_until == until
    [entry] = audits(db, "credit.temporary_increase")
    assert entry.actor_user_id == acme.admin.id and entry.reseller_id == acme.reseller.id
    assert '"temp_increase_minor": 5000' in entry.after


def test_increase_by_percent_of_permanent_limit(db, acme):
    credit.set_temporary_increase(
        db,
        account=acme.postpaid,
        percent=25,
        valid_until=utcnow() + timedelta(days=1),
        actor=acme.admin,
    )
    db.refresh(acme.postpaid)
    assert acme.postpaid.temp_increase_percent == 25
    assert acme.postpaid.temp_increase_minor is None
    assert ledger.effective_credit_limit(acme.postpaid) == 25000
    assert history(db, acme.postpaid)[0].new_value == "£250.00 (+25%)"


@pytest.mark.parametrize(
    ("amount", "percent", "days", "field"),
    [
        (10001, None, 5, "increase"),  # above 50% of £200 (tighter than £500)
        (None, 51, 5, "increase"),  # above 50%
        (5000, None, 31, "valid_until"),  # longer than 30 days
        (None, 10, 0, "valid_until"),  # not in the future
    ],
)
def test_above_maximum_is_refused_and_nothing_changes(db, acme, amount, percent, days, field):
    with pytest.raises(CreditError) as refused:
        credit.set_temporary_increase(
            db,
            account=acme.postpaid,
            amount_minor=amount,
            percent=percent,
            valid_until=utcnow() + timedelta(days=days),
            actor=acme.admin,
        )
    assert refused.value.field == field
    if field == "increase":
        assert "Maximum possible increase: £100.00" in refused.value.message
    db.rollback()
    db.refresh(acme.postpaid)
    assert acme.postpaid.temp_increase_valid_until is None
    assert history(db, acme.postpaid) == []
    assert audits(db, "credit.temporary_increase") == []


def test_amount_cap_applies_when_tighter_than_percentage(db, acme):
    acme.klass.max_increase_minor = 3000
    db.commit()
    with pytest.raises(CreditError, match=r"Maximum possible increase: £30\.00"):
        credit.set_temporary_increase(
            db,
            account=acme.postpaid,
            amount_minor=3001,
            valid_until=utcnow() + timedelta(days=1),
            actor=acme.admin,
        )
    db.rollback()
    credit.set_temporary_increase(
        db,
        account=acme.postpaid,
        amount_minor=3000,
        valid_until=utcnow() + timedelta(days=1),
        actor=acme.admin,
    )


def test_prompt_shows_the_maximum(db, acme):
    assert credit.maximum_prompt(acme.postpaid) == (
        "Maximum possible increase: £100.00 (£500.00 / 50% of the Permanent Credit Limit)"
        " for up to 30 days."
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount_minor": 0}, "Enter an amount other than zero."),
        ({"amount_minor": -500}, "Enter a positive amount."),
        ({"amount_minor": 10**20}, "The amount is too large."),
        ({"percent": 0}, "Enter a percentage"),
        ({"amount_minor": 100, "percent": 5}, "either as an amount or as a percentage"),
        ({}, "either as an amount or as a percentage"),
    ],
)
def test_bad_increase_values_are_refused(db, acme, kwargs, message):
    with pytest.raises(CreditError, match=message):
        credit.set_temporary_increase(
            db,
            account=acme.postpaid,
            valid_until=utcnow() + timedelta(days=1),
            actor=acme.admin,
            **kwargs,
        )


def test_percentage_needs_positive_permanent_limit(db, acme):
    acme.postpaid.credit_limit_minor = 0
    db.commit()
    with pytest.raises(CreditError, match="positive Permanent Credit Limit"):
        credit.set_temporary_increase(
            db,
            account=acme.postpaid,
            percent=10,
            valid_until=utcnow() + timedelta(days=1),
            actor=acme.admin,
        )


def test_increase_is_postpaid_only(db, acme):
    with pytest.raises(CreditError, match="only for postpaid customers"):
        credit.set_temporary_increase(
            db,
            account=acme.prepaid,
            amount_minor=100,
            valid_until=utcnow() + timedelta(days=1),
            actor=acme.admin,
        )


def test_class_without_maximum_allows_no_increase(db, acme):
    acme.klass.max_increase_minor = None
    acme.klass.max_increase_percent = None
    db.commit()
    with pytest.raises(CreditError, match="allows no increase"):
        credit.set_temporary_increase(
            db,
            account=acme.postpaid,
            amount_minor=100,
            valid_until=utcnow() + timedelta(days=1),
            actor=acme.admin,
        )


def test_new_increase_replaces_the_old(db, acme):
    until = utcnow() + timedelta(days=3)
    credit.set_temporary_increase(
        db, account=acme.postpaid, amount_minor=5000, valid_until=until, actor=acme.admin
    )
    credit.set_temporary_increase(
        db, account=acme.postpaid, percent=10, valid_until=until, actor=acme.admin
    )
    db.refresh(acme.postpaid)
    assert acme.postpaid.temp_increase_minor is None
    assert ledger.effective_credit_limit(acme.postpaid) == 22000
    rows = history(db, acme.postpaid)
    assert [(r.old_value, r.new_value) for r in rows] == [
        ("£200.00", "£250.00 (+£50.00)"),
        ("£250.00 (+£50.00)", "£220.00 (+10%)"),
    ]


def test_expired_increase_is_never_counted_even_before_the_job_runs(db, acme):
    start = utcnow()
    credit.set_temporary_increase(
        db,
        account=acme.postpaid,
        amount_minor=5000,
        valid_until=start + timedelta(hours=1),
        actor=acme.admin,
        now=start,
    )
    db.refresh(acme.postpaid)
    later = start + timedelta(hours=1)
    assert ledger.effective_credit_limit(acme.postpaid, start) == 25000
    assert ledger.effective_credit_limit(acme.postpaid, later) == 20000
    assert ledger.available_funds(acme.postpaid, later) == 20000


def test_revert_job_clears_expired_increase_and_writes_revert_row(db, acme):
    start = utcnow() - timedelta(days=2)
    credit.set_temporary_increase(
        db,
        account=acme.postpaid,
        amount_minor=5000,
        valid_until=start + timedelta(days=1),
        actor=acme.admin,
        now=start,
    )
    assert credit.revert_expired_increases(db) == 1
    assert credit.revert_expired_increases(db) == 0  # safe to run twice
    db.refresh(acme.postpaid)
    assert acme.postpaid.temp_increase_valid_until is None
    assert acme.postpaid.temp_increase_minor is None
    revert = history(db, acme.postpaid)[-1]
    assert revert.kind == CreditChangeKind.REVERT
    assert (revert.old_value, revert.new_value) == ("£250.00 (+£50.00)", "£200.00")
    assert revert.actor_user_id is None
    assert len(audits(db, "credit.revert_increase")) == 1


def test_revert_job_leaves_valid_increases_alone(db, acme):
    credit.set_temporary_increase(
        db,
        account=acme.postpaid,
        amount_minor=5000,
        valid_until=utcnow() + timedelta(days=1),
        actor=acme.admin,
    )
    assert credit.revert_expired_increases(db) == 0
    db.refresh(acme.postpaid)
    assert acme.postpaid.temp_increase_minor == 5000


def test_permanent_limit_change_writes_history_and_audit(db, acme):
    credit.set_permanent_limit(db, account=acme.postpaid, limit_minor=30000, actor=acme.admin)
    db.refresh(acme.postpaid)
    assert acme.postpaid.credit_limit_minor == 30000
    [row] = history(db, acme.postpaid)
    assert (row.kind, row.old_value, row.new_value) == (
        CreditChangeKind.PERMANENT,
        "£200.00",
        "£300.00",
    )
    [entry] = audits(db, "credit.permanent_limit")
    assert '"credit_limit_minor": 20000' in entry.before
    assert '"credit_limit_minor": 30000' in entry.after


@pytest.mark.parametrize("bad", [-1, 10**20, 1.5, None])
def test_bad_permanent_limit_refused(db, acme, bad):
    with pytest.raises(CreditError):
        credit.set_permanent_limit(db, account=acme.postpaid, limit_minor=bad, actor=acme.admin)
    db.rollback()
    db.refresh(acme.postpaid)
    assert acme.postpaid.credit_limit_minor == 20000


def test_permanent_limit_is_postpaid_only(db, acme):
    with pytest.raises(CreditError, match="only for postpaid"):
        credit.set_permanent_limit(db, account=acme.prepaid, limit_minor=100, actor=acme.admin)


# --- thresholds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "model", "expected"),
    [
        ("10, 5", BillingModel.PREPAID, [Threshold(1000), Threshold(500)]),
        (
            "50%, 20.50,0",
            BillingModel.POSTPAID,
            [Threshold(None, 50), Threshold(2050), Threshold(0)],
        ),
        ("", BillingModel.PREPAID, []),
        (" 5 , 5 ", BillingModel.PREPAID, [Threshold(500)]),
        (
            ",".join(str(i) for i in range(1, 11)),
            BillingModel.PREPAID,
            [Threshold(i * 100) for i in range(1, 11)],
        ),
    ],
)
def test_good_threshold_lists(text, model, expected):
    assert credit.parse_thresholds(text, model, "GBP") == expected


@pytest.mark.parametrize(
    ("text", "model", "messages"),
    [
        ("abc", BillingModel.PREPAID, ["'abc' is not an amount"]),
        ("10, 50%", BillingModel.PREPAID, ["'50%': percentages are only for postpaid accounts"]),
        ("NaN, 1e3", BillingModel.POSTPAID, ["'NaN' is not an amount", "'1e3' is not an amount"]),
        ("1.234", BillingModel.PREPAID, ["'1.234': Use at most 2 decimals for GBP"]),
        ("-5", BillingModel.PREPAID, ["'-5': Enter a positive amount"]),
        (
            "150%, 2.5%",
            BillingModel.POSTPAID,
            ["'150%' is not a percentage", "'2.5%' is not a percentage"],
        ),
        ("99999999999999", BillingModel.PREPAID, ["'99999999999999': Enter an amount up to"]),
        (",".join(["1"] * 11), BillingModel.PREPAID, ["at most 10 thresholds"]),
    ],
)
def test_bad_threshold_lists_name_each_bad_value(text, model, messages):
    with pytest.raises(CreditError) as refused:
        credit.parse_thresholds(text, model, "GBP")
    for message in messages:
        assert message in refused.value.message
    assert refused.value.field == "thresholds"


def test_set_thresholds_stores_normalised_list_and_audits(db, acme):
    acme.postpaid.warnings_fired = "50%"
    db.commit()
    credit.set_warning_thresholds(db, account=acme.postpaid, text="50%, 20", actor=acme.admin)
    db.refresh(acme.postpaid)
    assert acme.postpaid.warning_thresholds == "50%, 20.00"
    assert acme.postpaid.warnings_fired == ""
    assert len(audits(db, "credit.warning_thresholds")) == 1
    credit.set_warning_thresholds(db, account=acme.postpaid, text="  ", actor=acme.admin)
    db.refresh(acme.postpaid)
    assert acme.postpaid.warning_thresholds is None
    assert credit.effective_thresholds_text(acme.postpaid) == "10, 5"


def test_bad_thresholds_change_nothing(db, acme):
    acme.prepaid.warning_thresholds = "3"
    db.commit()
    with pytest.raises(CreditError):
        credit.set_warning_thresholds(db, account=acme.prepaid, text="10%", actor=acme.admin)
    db.rollback()
    db.refresh(acme.prepaid)
    assert acme.prepaid.warning_thresholds == "3"


def test_threshold_minor_for_percent_uses_permanent_limit(acme):
    assert credit.threshold_minor(Threshold(percent=25), acme.postpaid) == 5000
    assert credit.threshold_minor(Threshold(amount_minor=700), acme.postpaid) == 700


def test_threshold_labels_depend_on_model():
    assert credit.threshold_label(BillingModel.POSTPAID) == "Credit Limit Warning Threshold"
    assert credit.threshold_label(BillingModel.PREPAID) == "Low Funds Warning Threshold"


# --- transfers ---------------------------------------------------------------------------


def test_transfer_setting_resolution_and_audit(db, acme):
    assert credit.transfers_resolved(acme.prepaid) is True  # class allows
    credit.set_transfer_setting(
        db, account=acme.prepaid, setting=TransferSetting.NO, actor=acme.admin
    )
    db.refresh(acme.prepaid)
    assert acme.prepaid.transfers == TransferSetting.NO
    assert credit.transfers_resolved(acme.prepaid) is False
    acme.klass.transfers_allowed = False
    credit.set_transfer_setting(
        db, account=acme.prepaid, setting=TransferSetting.YES, actor=acme.admin
    )
    assert credit.transfers_resolved(acme.prepaid) is True
    [first, second] = audits(db, "credit.transfers")
    assert (first.before, first.after) == ('{"transfers": "class"}', '{"transfers": "no"}')


def test_bad_transfer_setting_refused(db, acme):
    with pytest.raises(ValueError):
        credit.set_transfer_setting(db, account=acme.prepaid, setting="maybe", actor=acme.admin)


# --- manual payments and adjustments ---------------------------------------------------------


def test_manual_payment_goes_through_the_ledger(db, acme):
    posting = credit.record_manual_payment(
        db,
        account=acme.prepaid,
        amount_minor=1234,
        order_number="ORD-1",
        reason="Bank transfer",
        actor=acme.admin,
        idempotency_key="k1",
    )
    db.refresh(acme.prepaid)
    assert acme.prepaid.balance_minor == 1234
    entry = db.get(LedgerEntry, posting.entry.id)
    assert (entry.kind, entry.amount_minor, entry.reference) == (EntryKind.PAYMENT, 1234, "ORD-1")
    assert entry.actor_user_id == acme.admin.id
    assert ledger.audit_balances(db) == []
    [row] = audits(db, "credit.manual_payment")
    assert row.before == '{"balance_minor": 0}'
    # prepaid: nothing to allocate
    assert db.scalars(select(UnallocatedPayment)).all() == []


def test_manual_payment_is_idempotent(db, acme):
    for _ in range(2):
        credit.record_manual_payment(
            db,
            account=acme.prepaid,
            amount_minor=500,
            order_number="",
            reason="Cash",
            actor=acme.admin,
            idempotency_key="same",
        )
    db.refresh(acme.prepaid)
    assert acme.prepaid.balance_minor == 500
    assert len(audits(db, "credit.manual_payment")) == 1


def test_postpaid_manual_payment_is_allocated_or_kept_unallocated(db, acme):
    credit.record_manual_payment(
        db,
        account=acme.postpaid,
        amount_minor=700,
        order_number="ORD-7",
        reason="Cheque",
        actor=acme.admin,
        idempotency_key="k7",
    )
    db.refresh(acme.postpaid)
    assert acme.postpaid.balance_minor == 700
    total, rows = credit.unallocated_payments(db, acme.postpaid)
    # With no open invoices the whole payment stays unallocated (whoever allocates it).
    assert total == 700
    assert rows[0].account_id == acme.postpaid.id


def test_postpaid_manual_payment_settles_open_invoice_first(db, acme):
    from datetime import date

    from portal.models import Invoice, InvoiceStatus

    invoice = Invoice(
        reseller_id=acme.reseller.id,
        account_id=acme.postpaid.id,
        number=1,
        period_start=date(2026, 1, 1),
        period_end=date(2026, 1, 31),
        currency="GBP",
        subtotal_minor=500,
        total_minor=500,
        status=InvoiceStatus.OPEN,
    )
    db.add(invoice)
    db.commit()
    credit.record_manual_payment(
        db,
        account=acme.postpaid,
        amount_minor=700,
        order_number="ORD-8",
        reason="Cheque",
        actor=acme.admin,
        idempotency_key="k8",
    )
    db.refresh(invoice)
    assert (invoice.paid_minor, invoice.status) == (500, InvoiceStatus.PAID)
    total, rows = credit.unallocated_payments(db, acme.postpaid)
    assert total == 200 and [r.remaining_minor for r in rows] == [200]


def test_adjustment_may_be_negative(db, acme):
    credit.adjust_balance(
        db,
        account=acme.prepaid,
        amount_minor=-250,
        order_number="",
        reason="Correction",
        actor=acme.admin,
        idempotency_key="a1",
    )
    db.refresh(acme.prepaid)
    assert acme.prepaid.balance_minor == -250
    entry = db.scalars(select(LedgerEntry)).one()
    assert entry.kind == EntryKind.ADJUSTMENT
    assert entry.description == "Adjustment: Correction"
    assert len(audits(db, "credit.adjustment")) == 1


@pytest.mark.parametrize(
    ("function", "amount", "reason", "message"),
    [
        (credit.record_manual_payment, -100, "x", "Enter a positive amount."),
        (credit.record_manual_payment, 0, "x", "other than zero"),
        (credit.adjust_balance, 0, "x", "other than zero"),
        (credit.record_manual_payment, 10**20, "x", "too large"),
        (credit.record_manual_payment, 1.5, "x", "Enter an amount."),
        (credit.record_manual_payment, 100, "  ", "Give a reason."),
        (credit.adjust_balance, 100, "r" * 201, "at most 200"),
    ],
)
def test_bad_payments_change_nothing(db, acme, function, amount, reason, message):
    with pytest.raises(Exception, match=message):
        function(
            db,
            account=acme.prepaid,
            amount_minor=amount,
            order_number="",
            reason=reason,
            actor=acme.admin,
            idempotency_key="bad",
        )
    db.rollback()
    db.refresh(acme.prepaid)
    assert acme.prepaid.balance_minor == 0
    assert db.scalars(select(LedgerEntry)).all() == []
    assert db.scalars(select(AuditLog)).all() == []
