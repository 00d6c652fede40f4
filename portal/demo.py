"""An idempotent demo: two resellers, their admins, customers, plans, products, vouchers."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import invoices, ledger
from portal.auth.service import hash_password
from portal.models import (
    Account,
    AddOn,
    BillingModel,
    CardCode,
    CardCodeRecharge,
    CustomerClass,
    EntryKind,
    LedgerEntry,
    LicenseUsage,
    Payment,
    PaymentPurpose,
    PaymentStatus,
    Plan,
    PlanLicense,
    Reseller,
    ReserveGrant,
    Role,
    Subscription,
    TopupCard,
    TopupProduct,
    TransferSetting,
    User,
    utcnow,
)
from portal.money import format_money
from portal.pins import vault
from portal.plans import billing_period
from portal.settings import set_setting

DEMO_PASSWORD = "demo-pass"  # noqa: S105 - documented demo credential
# Admins sign in with a second factor: the demo admins are enrolled with these documented
# TOTP secrets (README, the `make run` banner); add one to an authenticator app, or print
# the current codes with `flask demo-codes`.
DEMO_TOTP_SECRETS = {
    "operator@example.com": "OPERATORDEMOTOTPSECRETKEY2222222",
    "admin@acme.example": "ACMEADMINDEMOTOTPSECRETKEY333333",
    "admin@beta.example": "BETAADMINDEMOTOTPSECRETKEY444444",
}
LICENSES = [
    ("extensions", "Extensions"),
    ("phone_numbers", "Phone numbers"),
    ("call_recording", "Call recording"),
    ("conference_rooms", "Conference rooms"),
]
PLANS = {  # name: (monthly price in pence, limits in LICENSES order)
    "Starter": (1000, (5, 2, 0, 1)),
    "Professional": (2500, (10, 5, 10, 3)),
    "Complete": (4500, (25, 10, 25, 10)),
}
# Known demo PINs so a person can try "Redeem voucher" straight away (README lists them).
DEMO_PINS = {
    "Acme Telecom": ["5550001111", "5550002222", "5550003333"],
    "Beta Voice": ["5550009999"],
}


def seed_demo(db: Session) -> None:
    """Create the demo once; running it again changes nothing."""
    set_setting(db, "default_currency", "GBP")
    set_setting(db, "tax_rate_bp", "2000")
    plans = _plans(db)
    _catalogue(db)
    acme, beta = _reseller(db, "Acme Telecom"), _reseller(db, "Beta Voice")
    _user(db, "operator@example.com", "Olivia Operator", Role.OPERATOR)
    _user(db, "admin@acme.example", "Adam Acme", Role.RESELLER_ADMIN, reseller=acme)
    _user(db, "admin@beta.example", "Bea Beta", Role.RESELLER_ADMIN, reseller=beta)
    alice = _account(db, acme, "100001", "Alice Example", "alice@example.com", BillingModel.PREPAID)
    bob = _account(
        db,
        acme,
        "100002",
        "Bob Example",
        "bob@example.com",
        BillingModel.POSTPAID,
        credit_limit_minor=20000,
    )
    dan = _account(db, acme, "100003", "Dan's Diner", "dan@example.com", BillingModel.PREPAID)
    carol = _account(db, beta, "200001", "Carol Example", "carol@example.com", BillingModel.PREPAID)
    for account, email in (
        (alice, "alice@example.com"),
        (bob, "bob@example.com"),
        (carol, "carol@example.com"),
    ):
        _user(db, email, account.name, Role.CUSTOMER, reseller=account.reseller, account=account)
    _subscribe(
        db,
        alice,
        plans["Complete"],
        {"extensions": 8, "phone_numbers": 3, "call_recording": 4, "conference_rooms": 2},
    )
    # Bob's current period began 5 days ago, so his demo shows a paid, an overdue and an
    # open invoice (issued at the start of each of his last three periods).
    _subscribe(db, bob, plans["Complete"], {"extensions": 12, "phone_numbers": 4}, days_ago=5)
    _subscribe(db, carol, plans["Starter"], {"extensions": 2})
    _subscribe(db, dan, plans["Starter"], {"extensions": 1})
    _timeline(db, alice, seed=1, start_minor=2500)
    _timeline(db, bob, seed=2)
    _timeline(db, carol, seed=3, start_minor=1500)
    _timeline(db, dan, seed=4, start_minor=500)
    _vouchers(db, acme, "ACME", 2000, 12)
    _vouchers(db, beta, "BETA", 1000, 4)
    _card_codes(db, acme, alice)
    db.commit()
    _reserve_credit(db, alice)
    _redemptions(db, acme, alice)
    _disputed_payment(db, dan)
    _near_credit_limit(db, acme)


def _reseller(db: Session, name: str) -> Reseller:
    reseller = db.scalar(select(Reseller).where(Reseller.name == name))
    if reseller is None:
        reseller = Reseller(name=name, currency="GBP")
        db.add(reseller)
        db.flush()
        db.add(
            CustomerClass(
                reseller_id=reseller.id,
                name="Standard",
                transfers_allowed=True,
                max_increase_minor=50000,
                max_increase_percent=50,
                max_increase_days=30,
                default_warning_thresholds="10, 5",
            )
        )
        db.flush()
    return reseller


def _user(db, email, name, role, *, reseller=None, account=None) -> User:
    user = db.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(
            email=email,
            name=name,
            role=role,
            password_hash=hash_password(DEMO_PASSWORD),
            reseller_id=reseller.id if reseller else None,
            account_id=account.id if account else None,
        )
        db.add(user)
        db.flush()
    if email in DEMO_TOTP_SECRETS and user.totp_secret is None:
        user.totp_secret = vault().encrypt(DEMO_TOTP_SECRETS[email])
        user.totp_enabled_at = utcnow()
    return user


def _account(db, reseller, number, name, email, model, credit_limit_minor=0) -> Account:
    account = db.scalar(select(Account).where(Account.number == number))
    if account is None:
        klass = db.scalar(select(CustomerClass).where(CustomerClass.reseller_id == reseller.id))
        account = Account(
            reseller_id=reseller.id,
            customer_class_id=klass.id,
            number=number,
            name=name,
            email=email,
            currency="GBP",
            billing_model=model,
            credit_limit_minor=credit_limit_minor,
            transfers=TransferSetting.CLASS,
            warning_thresholds="10, 5" if model == BillingModel.PREPAID else "50%, 20%",
        )
        db.add(account)
        db.flush()
    return account


def _plans(db: Session) -> dict[str, Plan]:
    plans = {}
    for order, (name, (price, limits)) in enumerate(PLANS.items()):
        plan = db.scalar(select(Plan).where(Plan.name == name))
        if plan is None:
            plan = Plan(name=name, price_minor=price, currency="GBP", sort_order=order)
            plan.licenses = [
                PlanLicense(service=service, label=label, limit=limit, sort_order=i)
                for i, ((service, label), limit) in enumerate(zip(LICENSES, limits, strict=True))
            ]
            db.add(plan)
            db.flush()
        plans[name] = plan
    return plans


def _catalogue(db: Session) -> None:
    if db.scalar(select(TopupProduct.id).limit(1)) is None:
        for pounds in (10, 20, 50, 100):
            db.add(TopupProduct(amount_minor=pounds * 100, currency="GBP", label=f"£{pounds}"))
    if db.scalar(select(AddOn.id).limit(1)) is None:
        db.add_all(
            [
                AddOn(
                    service="extensions",
                    label="5 extra extensions",
                    units=5,
                    price_minor=500,
                    currency="GBP",
                ),
                AddOn(
                    service="phone_numbers",
                    label="Extra phone number",
                    units=1,
                    price_minor=200,
                    currency="GBP",
                ),
                AddOn(
                    service="conference_rooms",
                    label="Extra conference room",
                    units=1,
                    price_minor=300,
                    currency="GBP",
                ),
            ]
        )
    db.flush()


def _subscribe(db, account, plan, usage: dict[str, int], days_ago: int = 10) -> None:
    """Subscribed two periods before the current one, which began `days_ago` days ago."""
    if db.scalar(select(Subscription).where(Subscription.account_id == account.id)):
        return
    anchor = (date.today() - timedelta(days=days_ago)).day
    start = billing_period(anchor, date.today() - timedelta(days=days_ago + 60)).start
    db.add(
        Subscription(account_id=account.id, plan_id=plan.id, anchor_day=anchor, started_on=start)
    )
    for service, used in usage.items():
        db.add(LicenseUsage(account_id=account.id, service=service, used=used))
    db.flush()


def _timeline(db: Session, account: Account, *, seed: int, start_minor: int = 0) -> None:
    """Ninety days of calls and top-ups with each period's invoice, posted in time order.

    Prepaid accounts top up when low and before each plan fee; postpaid Bob's calls are
    billed, and he paid his first invoice by bank transfer. Everything is posted in the
    order it happened, so every entry's balance after is right (history and chart).
    """
    if ledger.find_entry(db, account.id, "demo-u0") is not None:
        return
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    now = utcnow()
    prepaid = account.billing_model == BillingModel.PREPAID
    events: list[tuple[datetime, int, Callable[[], None]]] = []

    def post(kind, amount_minor, description, key, when):
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=kind,
            amount_minor=amount_minor,
            description=description,
            idempotency_key=key,
            at=when,
        )

    def top_up_if_low(day, when):
        if account.balance_minor < 800:
            post(EntryKind.TOPUP, 2000, "Top-up £20", f"demo-t{day}", when)

    if prepaid:
        first = now - timedelta(days=91)
        events.append(
            (
                first,
                0,
                lambda: post(EntryKind.TOPUP, start_minor, "Opening top-up", "demo-0", first),
            )
        )
    for day in range(89, -1, -1):
        when = now - timedelta(days=day, hours=rng.randint(0, 5))
        cost = rng.randint(20, 160) if prepaid else rng.randint(10, 60)
        if prepaid:
            events.append((when, 1, lambda day=day, when=when: top_up_if_low(day, when)))
        call = when + timedelta(hours=1)
        events.append(
            (
                call,
                2,
                lambda day=day, cost=cost, call=call: post(
                    EntryKind.USAGE, -cost, f"Calls on {call:%d %b}", f"demo-u{day}", call
                ),
            )
        )
    subscription = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    for number, period in enumerate(invoices.periods_due(db, subscription, now)):
        issued = datetime.combine(period.start, time(1), tzinfo=UTC)
        events.append((issued, 3, lambda n=number, at=issued: _issue(db, account, n, at)))
    for _when, _order, action in sorted(events, key=lambda event: (event[0], event[1])):
        action()
    db.commit()
    invoices.collect_overdue(db, now=now)


def _issue(db: Session, account: Account, number: int, issued: datetime) -> None:
    """The billing run at a period start (a prepaid customer tops up the fee just before)."""
    subscription = db.scalar(select(Subscription).where(Subscription.account_id == account.id))
    if account.billing_model == BillingModel.PREPAID:
        fee = subscription.plan.price_minor
        ledger.post_entry(
            db,
            account_id=account.id,
            kind=EntryKind.TOPUP,
            amount_minor=fee,
            description=f"Top-up {format_money(fee, account.currency)} by card",
            idempotency_key=f"demo-fee-topup-{number}",
            at=issued - timedelta(minutes=5),
        )
    db.commit()
    (invoice,) = invoices.generate_for_account(db, account_id=account.id, now=issued)
    if number == 0 and account.billing_model == BillingModel.POSTPAID:
        _pay(db, account, invoice, issued + timedelta(hours=2))


def _pay(db: Session, account: Account, invoice, when) -> None:
    """A bank transfer that paid the invoice in full."""
    locked = ledger.lock_account(db, account.id)
    ledger.post_entry(
        db,
        account_id=account.id,
        account=locked,
        kind=EntryKind.PAYMENT,
        amount_minor=invoice.total_minor,
        description=f"Bank transfer for {invoices.invoice_number(invoice)}",
        idempotency_key="demo-payment-1",
        at=when,
    )
    invoices.allocate_payment(
        db, account=locked, amount_minor=invoice.total_minor, source="Bank transfer"
    )
    db.commit()


def _vouchers(db: Session, reseller: Reseller, series: str, amount_minor: int, count: int) -> None:
    if db.scalar(select(TopupCard.id).where(TopupCard.series == series).limit(1)):
        return
    pins = DEMO_PINS[reseller.name] + [f"77{reseller.id}{i:07d}" for i in range(count)]
    expires = utcnow() + timedelta(days=365)
    pin_vault = vault()
    for index, pin in enumerate(pins):
        db.add(
            TopupCard(
                reseller_id=reseller.id,
                serial=f"{series}-{10000001 + index}",
                series=series,
                amount_minor=amount_minor,
                currency=reseller.currency,
                pin_hash=pin_vault.hash(pin),
                pin_encrypted=pin_vault.encrypt(pin),
                pin_length=len(pin),
                expires_at=expires,
            )
        )
    db.flush()


def _card_codes(db: Session, reseller: Reseller, account: Account) -> None:
    if db.scalar(select(CardCode.id).where(CardCode.reseller_id == reseller.id).limit(1)):
        return
    unlimited = CardCode(
        reseller_id=reseller.id,
        account_id=account.id,
        extension="0003*001",
        code="48151623",
        unlimited=True,
        credit_minor=None,
        currency="GBP",
    )
    limited = CardCode(
        reseller_id=reseller.id,
        account_id=account.id,
        extension="0003*002",
        code="42424242",
        unlimited=False,
        credit_minor=2000,
        currency="GBP",
    )
    db.add_all([unlimited, limited])
    db.flush()
    db.add(
        CardCodeRecharge(
            card_code_id=limited.id,
            order_number="ORD-1001",
            credit_added_minor=2000,
            credit_left_minor=2000,
        )
    )
    db.add(
        CardCodeRecharge(
            card_code_id=unlimited.id,
            order_number="ORD-1000",
            credit_added_minor=None,
            credit_left_minor=None,
        )
    )
    db.flush()


def _reserve_credit(db: Session, account: Account) -> None:
    """Alice holds reserve credit for in-app purchases: one grant partly used, one untouched."""
    if ledger.usable_reserve(db, account.id) or db.scalar(
        select(ReserveGrant.id).where(ReserveGrant.account_id == account.id).limit(1)
    ):
        return
    locked = ledger.lock_account(db, account.id)
    now = utcnow()
    ledger.grant_reserve(
        db,
        account=locked,
        amount_minor=1200,
        source="Credit from an earlier plan change",
        expires_at=now + timedelta(days=20),
        idempotency_key="demo-reserve-1",
        at=now - timedelta(days=10),
    )
    ledger.grant_reserve(
        db,
        account=locked,
        amount_minor=500,
        source="Welcome credit for add-ons",
        expires_at=now + timedelta(days=60),
        idempotency_key="demo-reserve-2",
        at=now - timedelta(days=2),
    )
    db.flush()
    ledger.consume_reserve(db, account=locked, amount_minor=500, purpose="5 extra extensions")
    db.commit()


def _redemptions(db: Session, reseller: Reseller, account: Account) -> None:
    """Two top-up cards already redeemed (not the PINs the README lists for trying)."""
    from portal.vouchers import redeem_voucher

    redeemed = db.scalar(
        select(LedgerEntry.id)
        .where(LedgerEntry.account_id == account.id, LedgerEntry.kind == EntryKind.VOUCHER)
        .limit(1)
    )
    if redeemed is not None:
        return
    user = db.scalar(select(User).where(User.account_id == account.id))
    for i in (0, 1):
        redeem_voucher(
            db, user=user, account=account, pin=f"77{reseller.id}{i:07d}", client_ip="127.0.0.1"
        )


def _disputed_payment(db: Session, account: Account) -> None:
    """A card top-up the cardholder disputed: admin Payments shows it, with its chargeback."""
    from portal.payments import outcomes, service

    key = "demo-disputed-payment"
    if db.scalar(select(Payment.id).where(Payment.idempotency_key == key)) is not None:
        return
    payment = Payment(
        account_id=account.id,
        purpose=PaymentPurpose.TOPUP,
        amount_minor=1500,
        currency=account.currency,
        status=PaymentStatus.PENDING,
        stripe_payment_intent_id="pi_demo_disputed",
        stripe_charge_id="ch_demo_disputed",
        idempotency_key=key,
        order_number="DEMO-DISPUTE-1",
    )
    db.add(payment)
    db.commit()
    service.settle_payment_succeeded(db, payment=payment)
    outcomes.record_dispute(
        db,
        outcomes.DisputeFact(
            dispute_id="dp_demo_disputed",
            charge_id="ch_demo_disputed",
            payment_intent_id="pi_demo_disputed",
            amount_minor=1500,
            status="needs_response",
            reason="fraudulent",
            withdrawn=True,
        ),
    )


def _near_credit_limit(db: Session, reseller: Reseller) -> None:
    """A postpaid customer who has used 90% of the credit limit (the admin overview lists it)."""
    erin = _account(
        db,
        reseller,
        "100004",
        "Erin's Events",
        "erin@example.com",
        BillingModel.POSTPAID,
        credit_limit_minor=10000,
    )
    if ledger.find_entry(db, erin.id, "demo-erin-calls") is None:
        ledger.post_entry(
            db,
            account_id=erin.id,
            kind=EntryKind.USAGE,
            amount_minor=-9000,
            description="Conference calls this month",
            idempotency_key="demo-erin-calls",
            at=utcnow() - timedelta(days=3),
        )
        db.commit()
