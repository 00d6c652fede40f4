"""Payment cards and money in by card: the operations views, webhooks and jobs call.

Money moves only through portal.ledger; Stripe is reached only through the gateway.
A payment row is committed *before* Stripe is called, so no charge is ever in limbo
without a record, and the ledger credit is keyed on the payment, so it happens
exactly once whichever of the synchronous answer or the webhook arrives first.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import ledger, receipts
from portal.domain import DomainError, NotFound, ValidationFailed
from portal.i18n import _, format_amount
from portal.models import (
    Account,
    AutoRechargeSetting,
    BillingModel,
    CardRole,
    EntryKind,
    Payment,
    PaymentCard,
    PaymentPurpose,
    PaymentStatus,
    TopupProduct,
    utcnow,
)
from portal.payments import gateway, outcomes
from portal.payments.gateway import (
    AuthenticationRequired,
    CardInfo,
    GatewayRefused,
    GatewayUnavailable,
    PaymentDeclined,
    SetupIntentInfo,
)

log = logging.getLogger(__name__)
SETUP_INTENT_ID = re.compile(r"^seti_[A-Za-z0-9_]{1,60}$")
ENTRY_KIND = {
    PaymentPurpose.TOPUP: EntryKind.TOPUP,
    PaymentPurpose.AUTO_RECHARGE: EntryKind.AUTO_RECHARGE,
    PaymentPurpose.INVOICE: EntryKind.PAYMENT,
    PaymentPurpose.MANUAL: EntryKind.PAYMENT,
}
ROLE_ORDER = {CardRole.PRIMARY: 0, CardRole.SECONDARY: 1, CardRole.OTHER: 2}
PENDING_MESSAGE = (
    "The payment service did not confirm the payment yet. "
    "Your balance is credited as soon as it does."
)
# Stripe replays an idempotent request for 24 hours; after that a retry could charge twice.
REPLAY_WINDOW = timedelta(hours=23)


# --- Cards --------------------------------------------------------------------------


def list_cards(db: Session, *, account: Account) -> list[PaymentCard]:
    """The account's cards: primary first, then secondary, then the others."""
    cards = db.scalars(select(PaymentCard).where(PaymentCard.account_id == account.id)).all()
    return sorted(cards, key=lambda c: (ROLE_ORDER[c.role], c.id))


def get_card(db: Session, *, account: Account, card_id: int) -> PaymentCard:
    """One card of this account (another account's card does not exist: NotFound)."""
    card = db.get(PaymentCard, card_id) if 0 < card_id < 2**31 else None
    if card is None or card.account_id != account.id:
        raise NotFound(_("No such card."))
    return card


def card_with_role(db: Session, *, account: Account, role: CardRole) -> PaymentCard | None:
    """The account's primary or secondary card, if any."""
    return db.scalar(
        select(PaymentCard).where(PaymentCard.account_id == account.id, PaymentCard.role == role)
    )


def start_card_setup(db: Session, *, account: Account) -> SetupIntentInfo:
    """Prepare Stripe.js to collect a card: the customer (created on demand) and a SetupIntent."""
    customer_id = gateway.ensure_customer(db, account)
    return gateway.create_setup_intent(customer_id)


def add_card_from_setup_intent(
    db: Session, *, account: Account, setup_intent_id: str
) -> PaymentCard:
    """Save the card a succeeded SetupIntent collected (first Primary, second Secondary)."""
    if not SETUP_INTENT_ID.match(setup_intent_id or ""):
        raise ValidationFailed(_("The card setup is missing. Please add the card again."))
    if not account.stripe_customer_id:
        raise ValidationFailed(_("The card setup does not belong to your account."))
    info = gateway.card_from_setup_intent(setup_intent_id, account.stripe_customer_id)
    on_file = card_on_file(db, account=account, info=info)
    if on_file is not None:
        # The same card again: keep the one on file, and take the copy off the customer in
        # Stripe so it cannot be charged by mistake either.
        try:
            gateway.detach_payment_method(info.payment_method_id)
        except GatewayRefused:
            log.info("duplicate card %s was not attached in Stripe", info.payment_method_id)
        raise CardAlreadyOnFile(on_file)
    return link_card(db, account=account, info=info)


class CardAlreadyOnFile(ValidationFailed):
    def __init__(self, card: PaymentCard):
        super().__init__(_("This card is already on file: %(card)s.", card=card_label(card)))
        self.card = card


def card_label(card: PaymentCard | CardInfo) -> str:
    """ "Visa ending 4242, expires 12/2030": brand, last 4 and expiry tell two cards apart."""
    return _(
        "%(brand)s ending %(last4)s, expires %(month)02d/%(year)d",
        brand=(card.brand or "card").title(),
        last4=card.last4,
        month=card.exp_month,
        year=card.exp_year,
    )


def card_on_file(db: Session, *, account: Account, info: CardInfo) -> PaymentCard | None:
    """The account's card with the same Stripe fingerprint (same card number), if any."""
    if info.fingerprint is None:
        return None
    return db.scalar(
        select(PaymentCard)
        .where(
            PaymentCard.account_id == account.id,
            PaymentCard.fingerprint == info.fingerprint,
            PaymentCard.stripe_payment_method_id != info.payment_method_id,
        )
        .order_by(PaymentCard.id)
        .limit(1)
    )


def link_card(db: Session, *, account: Account, info: CardInfo) -> PaymentCard:
    """Record a card already attached in Stripe (idempotent; commits)."""
    ledger.lock_account(db, account.id)  # serialises role assignment per account
    card = db.scalar(
        select(PaymentCard).where(PaymentCard.stripe_payment_method_id == info.payment_method_id)
    )
    if card is not None:
        if card.account_id != account.id:
            raise ValidationFailed(_("This card belongs to another account."))
        return card
    card = PaymentCard(account_id=account.id, stripe_payment_method_id=info.payment_method_id)
    _copy_card_details(card, info)
    card.role = _free_role(db, account)
    db.add(card)
    db.commit()
    return card


def _copy_card_details(card: PaymentCard, info: CardInfo) -> None:
    card.brand, card.last4 = info.brand[:30], info.last4[-4:]
    card.exp_month, card.exp_year = info.exp_month, info.exp_year
    if info.fingerprint:
        card.fingerprint = info.fingerprint


def _free_role(db: Session, account: Account) -> CardRole:
    for role in (CardRole.PRIMARY, CardRole.SECONDARY):
        if card_with_role(db, account=account, role=role) is None:
            return role
    return CardRole.OTHER


def set_card_role(db: Session, *, account: Account, card_id: int, role: CardRole) -> PaymentCard:
    """Make a card primary or secondary; the card holding that role moves aside (commits)."""
    ledger.lock_account(db, account.id)
    card = get_card(db, account=account, card_id=card_id)
    if role not in (CardRole.PRIMARY, CardRole.SECONDARY):
        raise ValidationFailed(_("Choose primary or secondary."))
    if card.role == role:
        return card
    holder = card_with_role(db, account=account, role=role)
    if card.role == CardRole.PRIMARY and holder is None:
        raise ValidationFailed(
            _("Make another card primary first: an account needs a primary card.")
        )
    if holder is not None:
        # Swap: the old primary becomes the backup (secondary) rather than disappearing.
        holder.role = card.role if card.role != CardRole.OTHER else _demoted(role)
        if holder.role == CardRole.SECONDARY and card.role == CardRole.OTHER:
            _demote_secondary(db, account, keep=holder)
    card.role = role
    db.commit()
    return card


def _demoted(role: CardRole) -> CardRole:
    return CardRole.SECONDARY if role == CardRole.PRIMARY else CardRole.OTHER


def _demote_secondary(db: Session, account: Account, *, keep: PaymentCard) -> None:
    for other in db.scalars(
        select(PaymentCard).where(
            PaymentCard.account_id == account.id,
            PaymentCard.role == CardRole.SECONDARY,
            PaymentCard.id != keep.id,
        )
    ):
        other.role = CardRole.OTHER
    db.flush()


def delete_card(db: Session, *, account: Account, card_id: int) -> None:
    """Detach a card in Stripe and forget it; the secondary steps up if the primary goes."""
    card = get_card(db, account=account, card_id=card_id)
    try:
        gateway.detach_payment_method(card.stripe_payment_method_id)
    except GatewayRefused:
        log.info("card %s was already detached in Stripe", card.id)
    remove_card(db, account=account, card=card)


def remove_card(db: Session, *, account: Account, card: PaymentCard) -> None:
    """Forget a card (already gone from Stripe) and promote the next one (commits)."""
    ledger.lock_account(db, account.id)
    role = card.role
    db.delete(card)
    db.flush()
    if role == CardRole.PRIMARY:
        _promote(db, account, CardRole.SECONDARY, CardRole.PRIMARY)
    if card_with_role(db, account=account, role=CardRole.SECONDARY) is None:
        _promote(db, account, CardRole.OTHER, CardRole.SECONDARY)
    if card_with_role(db, account=account, role=CardRole.PRIMARY) is None:
        _disable_auto_recharge(db, account)
    db.commit()


def _promote(db: Session, account: Account, from_role: CardRole, to_role: CardRole) -> None:
    successor = db.scalar(
        select(PaymentCard)
        .where(PaymentCard.account_id == account.id, PaymentCard.role == from_role)
        .order_by(PaymentCard.id)
        .limit(1)
    )
    if successor is not None:
        successor.role = to_role
        db.flush()


def _disable_auto_recharge(db: Session, account: Account) -> None:
    # Without a primary card an automatic top-up cannot run; say so rather than fail later.
    setting = db.get(AutoRechargeSetting, account.id)
    if setting is not None and setting.enabled:
        setting.enabled = False


def update_card_details(db: Session, *, info: CardInfo) -> PaymentCard | None:
    """Refresh brand, last 4 and expiry after Stripe reports a change (commits)."""
    card = db.scalar(
        select(PaymentCard).where(PaymentCard.stripe_payment_method_id == info.payment_method_id)
    )
    if card is not None:
        _copy_card_details(card, info)
        db.commit()
    return card


# --- Money in -----------------------------------------------------------------------


def charge_card(
    db: Session,
    *,
    account: Account,
    card: PaymentCard,
    amount_minor: int,
    purpose: PaymentPurpose,
    entry_kind: EntryKind | None = None,
    idempotency_key: str,
    invoice_id: int | None = None,
    role: CardRole | None = None,
) -> Payment:
    """Charge a saved card off-session and credit the balance once it succeeds.

    Returns the Payment with its recorded status (succeeded, failed, requires_action,
    or pending when Stripe did not answer). Calling again with the same key returns
    the first payment without charging again.
    """
    if entry_kind is not None and entry_kind != ENTRY_KIND[purpose]:
        raise ValueError(f"{purpose} payments are credited as {ENTRY_KIND[purpose]}")
    existing = _by_key(db, idempotency_key)
    if existing is not None:
        return _same_payment(existing, account)
    try:
        payment = _record_pending(
            db, account, card, amount_minor, purpose, idempotency_key, role or card.role, invoice_id
        )
    except DuplicateRequest:
        return _same_payment(_by_key(db, idempotency_key), account)
    try:
        result = gateway.charge_off_session(
            customer_id=account.stripe_customer_id or "",
            payment_method_id=card.stripe_payment_method_id,
            amount_minor=amount_minor,
            currency=payment.currency,
            idempotency_key=idempotency_key,
            metadata={"payment_id": str(payment.id), "account_id": str(account.id)},
        )
    except GatewayUnavailable:
        return _keep_pending(db, payment)
    except (PaymentDeclined, AuthenticationRequired) as exc:
        return settle_payment_failed(db, payment=payment, error=exc)
    return _apply_result(db, payment, result)


class DuplicateRequest(DomainError):
    pass


def _by_key(db: Session, idempotency_key: str) -> Payment | None:
    return db.scalar(select(Payment).where(Payment.idempotency_key == idempotency_key))


def _same_payment(payment: Payment, account: Account) -> Payment:
    if payment.account_id != account.id:
        raise ValidationFailed(_("This payment request was already used."))
    return payment


def _record_pending(
    db, account, card, amount_minor, purpose, idempotency_key, role, invoice_id=None
) -> Payment:
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValidationFailed(_("The amount must be greater than zero."))
    if card.account_id != account.id:
        raise NotFound(_("No such card."))
    if not account.stripe_customer_id:
        raise ValidationFailed(_("Add a payment card first."))
    payment = Payment(
        account_id=account.id,
        card_id=card.id,
        purpose=purpose,
        amount_minor=amount_minor,
        currency=account.currency,
        status=PaymentStatus.PENDING,
        idempotency_key=idempotency_key,
        invoice_id=invoice_id,
        paid_by_role=role.value if role in (CardRole.PRIMARY, CardRole.SECONDARY) else "",
    )
    db.add(payment)
    # Committed before Stripe is called: a crash mid-call leaves a pending row to reconcile.
    try:
        db.commit()
    except IntegrityError:
        # The same request raced us (a double click): theirs is the payment.
        db.rollback()
        raise DuplicateRequest(_("This payment is already being processed.")) from None
    return payment


def _keep_pending(db: Session, payment: Payment) -> Payment:
    payment = _lock_payment(db, payment.id)
    if payment.status == PaymentStatus.PENDING:
        payment.failure_message = PENDING_MESSAGE
    db.commit()
    return payment


def _apply_result(db: Session, payment: Payment, result: gateway.ChargeResult) -> Payment:
    if result.status == "succeeded":
        return settle_payment_succeeded(
            db,
            payment=payment,
            payment_intent_id=result.payment_intent_id,
            charge_id=result.charge_id,
        )
    # "processing": Stripe will tell us through the webhook (or the reconcile job).
    payment = _lock_payment(db, payment.id)
    learnt = _learns_ids(payment, result.payment_intent_id, result.charge_id)
    outcomes.remember_ids(payment, result.payment_intent_id, result.charge_id)
    db.commit()
    if learnt:
        outcomes.link_orphans(db, payment.id)
    return payment


def _lock_payment(db: Session, payment_id: int) -> Payment:
    return db.execute(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def find_payment(
    db: Session, *, payment_intent_id: str | None = None, metadata: dict | None = None
) -> Payment | None:
    """The payment of a PaymentIntent: by its id, or by our payment id in its metadata.

    The metadata route matters when the webhook overtakes the synchronous answer, before
    we stored the intent id.
    """
    return outcomes.payment_of(
        db, charge_id=None, payment_intent_id=payment_intent_id, metadata=metadata
    )


def settle_payment_succeeded(
    db: Session,
    *,
    payment_intent_id: str | None = None,
    payment: Payment | None = None,
    charge_id: str | None = None,
    metadata: dict | None = None,
) -> Payment | None:
    """Mark a payment succeeded and credit the balance exactly once (commits).

    Refunds and disputes that arrived earlier are applied in the same transaction.
    """
    payment = payment or find_payment(db, payment_intent_id=payment_intent_id, metadata=metadata)
    if payment is None:
        return None
    account, payment = outcomes.lock_payment(db, payment.id)  # account first, then payment
    learnt = _learns_ids(payment, payment_intent_id, charge_id)
    outcomes.remember_ids(payment, payment_intent_id, charge_id)
    if not payment.paid:
        posting = ledger.post_entry(
            db,
            account_id=account.id,
            account=account,
            kind=ENTRY_KIND[payment.purpose],
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            description=_credit_description(payment),
            reference=payment.stripe_payment_intent_id or "",
            idempotency_key=f"payment:{payment.id}",
        )
        if not posting.replayed and account.billing_model == BillingModel.POSTPAID:
            _allocate_to_invoices(db, account, payment)
        payment.status = PaymentStatus.SUCCEEDED
        payment.failure_message = ""
        payment.needs_authentication = False
        # The receipt is for the payment as it succeeded; refunds or disputes already
        # known are applied after it.
        receipts.issue_receipt(db, account=account, payment=payment)
        outcomes.sync_money(db, account, payment)
    db.commit()
    if learnt:
        outcomes.link_orphans(db, payment.id)
    return payment


def note_intent(
    db: Session,
    *,
    payment_intent_id: str,
    charge_id: str | None = None,
    metadata: dict | None = None,
) -> Payment | None:
    """Remember Stripe's ids for a payment still in progress (commits)."""
    payment = find_payment(db, payment_intent_id=payment_intent_id, metadata=metadata)
    if payment is None:
        return None
    _account, payment = outcomes.lock_payment(db, payment.id)
    learnt = _learns_ids(payment, payment_intent_id, charge_id)
    outcomes.remember_ids(payment, payment_intent_id, charge_id)
    db.commit()
    if learnt:
        outcomes.link_orphans(db, payment.id)
    return payment


def _learns_ids(payment: Payment, intent_id: str | None, charge_id: str | None) -> bool:
    return bool(
        (intent_id and not payment.stripe_payment_intent_id)
        or (charge_id and not payment.stripe_charge_id)
    )


def _allocate_to_invoices(db: Session, account: Account, payment: Payment) -> None:
    # A postpaid customer's card payment pays their oldest open invoices first; the rest
    # is kept as an unallocated payment for the next invoice (SPEC 5.5).
    from portal.invoices import allocate_payment

    allocate_payment(
        db,
        account=account,
        amount_minor=payment.amount_minor,
        source=f"Card payment {payment.id}",
        first_invoice_id=payment.invoice_id,
    )


def _credit_description(payment: Payment) -> str:
    what = {
        PaymentPurpose.TOPUP: "Top-up",
        PaymentPurpose.AUTO_RECHARGE: "Automatic top-up",
    }.get(payment.purpose, "Card payment")
    card = payment.card
    return f"{what} by card {card.brand.title()} •••• {card.last4}" if card else f"{what} by card"


def settle_payment_failed(
    db: Session,
    *,
    payment_intent_id: str | None = None,
    payment: Payment | None = None,
    error: gateway.GatewayError | None = None,
    message: str = "",
    metadata: dict | None = None,
    requires_action: bool = False,
) -> Payment | None:
    """Record a failed (or authentication-needing) payment; a succeeded one stays succeeded."""
    payment = payment or find_payment(db, payment_intent_id=payment_intent_id, metadata=metadata)
    if payment is None:
        return None
    _account, payment = outcomes.lock_payment(db, payment.id)
    intent_id = payment_intent_id or (error.payment_intent_id if error is not None else None)
    charge_id = error.charge_id if error is not None else None
    learnt = _learns_ids(payment, intent_id, charge_id)
    outcomes.remember_ids(payment, intent_id, charge_id)
    if error is not None:
        message = message or error.message
    # Events arrive out of order: a late "failed" never undoes a credited payment.
    if payment.status in (PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION):
        needs_customer = requires_action or isinstance(error, AuthenticationRequired)
        payment.status = PaymentStatus.REQUIRES_ACTION if needs_customer else PaymentStatus.FAILED
        payment.needs_authentication = needs_customer
        payment.failure_message = (message or "The payment failed.")[:300]
    db.commit()
    if learnt:
        outcomes.link_orphans(db, payment.id)
    return payment


def reconcile_pending_payments(
    db: Session, *, older_than: timedelta = timedelta(minutes=10)
) -> int:
    """Ask Stripe about payments still pending after `older_than`; returns how many settled."""
    cutoff = utcnow() - older_than
    pending = db.scalars(
        select(Payment.id)
        .where(Payment.status == PaymentStatus.PENDING, Payment.created_at <= cutoff)
        .order_by(Payment.id)
    ).all()
    settled = 0
    for payment_id in pending:
        try:
            settled += _reconcile_one(db, db.get(Payment, payment_id))
        except GatewayUnavailable:
            db.rollback()
            break  # Stripe is down: try again on the next run
    return settled


def _reconcile_one(db: Session, payment: Payment) -> int:
    if payment.stripe_payment_intent_id:
        result = gateway.retrieve_payment_intent(payment.stripe_payment_intent_id)
    elif payment.card is not None and utcnow() - payment.created_at < REPLAY_WINDOW:
        result = _replay_charge(db, payment)
        if result is None:
            return 1
    else:
        settle_payment_failed(db, payment=payment, message=_("The payment never reached the card."))
        return 1
    if result.status == "succeeded":
        settle_payment_succeeded(
            db,
            payment=payment,
            payment_intent_id=result.payment_intent_id,
            charge_id=result.charge_id,
        )
        return 1
    if result.status in ("requires_payment_method", "canceled", "requires_action"):
        settle_payment_failed(
            db,
            payment=payment,
            payment_intent_id=result.payment_intent_id,
            message=result.failure_message,
        )
        return 1
    return 0


def _replay_charge(db: Session, payment: Payment) -> gateway.ChargeResult | None:
    # We never heard back: send the identical request with the same idempotency key,
    # which Stripe answers with the original outcome instead of charging again.
    account = db.get(Account, payment.account_id)
    try:
        return gateway.charge_off_session(
            customer_id=account.stripe_customer_id or "",
            payment_method_id=payment.card.stripe_payment_method_id,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            idempotency_key=payment.idempotency_key,
            metadata={"payment_id": str(payment.id), "account_id": str(account.id)},
        )
    except (PaymentDeclined, AuthenticationRequired) as exc:
        settle_payment_failed(db, payment=payment, error=exc)
        return None


# --- Top-ups ------------------------------------------------------------------------


def topup_products(db: Session, *, account: Account) -> list[TopupProduct]:
    """Active top-up products in the account's currency, smallest first."""
    return list(
        db.scalars(
            select(TopupProduct)
            .where(TopupProduct.active.is_(True), TopupProduct.currency == account.currency)
            .order_by(TopupProduct.amount_minor, TopupProduct.id)
        )
    )


@dataclass(frozen=True)
class CardCharge:
    """The outcome of charging the account's cards: primary first, then the secondary.

    `payment` is the one that decides: the succeeded one, the one still pending (its
    outcome unknown, so no other card was tried), the one waiting for the customer to
    authenticate (on-session), or the last that failed. `tried` lists every attempt.
    """

    payment: Payment
    tried: tuple[Payment, ...]

    @property
    def succeeded(self) -> bool:
        return self.payment.status == PaymentStatus.SUCCEEDED or self.payment.paid

    @property
    def paid_by(self) -> str:
        """ "primary" or "secondary" when a card paid, else ""."""
        return self.payment.paid_by_role if self.succeeded else ""

    def failures(self) -> list[str]:
        return [
            f"{_card_label(p)}: {p.failure_message or 'failed'}"
            for p in self.tried
            if p.status in (PaymentStatus.FAILED, PaymentStatus.REQUIRES_ACTION)
        ]


def _card_label(payment: Payment) -> str:
    card = payment.card
    role = payment.paid_by_role or "card"
    if card is None:
        return f"{role} card"
    return f"{role} card {card.brand.title()} •••• {card.last4}"


def charge_with_backup(
    db: Session,
    *,
    account: Account,
    amount_minor: int,
    purpose: PaymentPurpose,
    idempotency_key: str,
    on_session: bool,
    invoice_id: int | None = None,
) -> CardCharge:
    """Charge the primary card, and the secondary when the primary definitively failed.

    Every card attempt has its own idempotency key (`<key>:card<id>`), so repeating the
    call replays the same attempts instead of charging again. A payment whose outcome is
    unknown (Stripe unreachable) stops here: trying the secondary could charge twice.
    On-session, a primary card that needs the customer to authenticate (3-D Secure) is
    handed back for the browser to finish; off-session the secondary is tried instead.
    Used by the manual top-up, the automatic top-up and the invoice "Pay now".
    """
    cards = [
        card
        for role in (CardRole.PRIMARY, CardRole.SECONDARY)
        if (card := card_with_role(db, account=account, role=role)) is not None
    ]
    if not cards:
        raise ValidationFailed(_("Add a payment card and make it primary before paying by card."))
    tried: list[Payment] = []
    for card in cards:
        payment = charge_card(
            db,
            account=account,
            card=card,
            amount_minor=amount_minor,
            purpose=purpose,
            idempotency_key=f"{idempotency_key}:card{card.id}",
            role=card.role,
            invoice_id=invoice_id,
        )
        tried.append(payment)
        if payment.paid or payment.status == PaymentStatus.PENDING:
            break
        if payment.status == PaymentStatus.REQUIRES_ACTION and on_session:
            break
    return CardCharge(payment=tried[-1], tried=tuple(tried))


def top_up(db: Session, *, account: Account, product_id: int, idempotency_key: str) -> Payment:
    """Charge the primary card (then the secondary) for a top-up product.

    Returns the succeeded payment; raises a domain error otherwise (AuthenticationRequired
    carries the payment for the browser to finish 3-D Secure).
    """
    product = db.get(TopupProduct, product_id)
    if product is None or not product.active or product.currency != account.currency:
        raise ValidationFailed(_("Choose one of the top-up amounts shown."), field="product_id")
    if card_with_role(db, account=account, role=CardRole.PRIMARY) is None:
        raise ValidationFailed(_("Add a payment card and make it primary before topping up."))
    outcome = charge_with_backup(
        db,
        account=account,
        amount_minor=product.amount_minor,
        purpose=PaymentPurpose.TOPUP,
        idempotency_key=f"topup:{account.id}:{idempotency_key}",
        on_session=True,
    )
    if not outcome.succeeded and len(outcome.tried) > 1:
        failures = "; ".join(outcome.failures())
        if outcome.payment.status == PaymentStatus.FAILED:
            raise PaymentDeclined(f"No card could pay. {failures}"[:300])
    raise_unless_succeeded(outcome.payment)
    return outcome.payment


# --- 3-D Secure: the customer finishes a payment the bank wants confirmed -------------


def payments_awaiting_authentication(db: Session, *, account: Account) -> list[Payment]:
    """The account's payments its bank wants confirmed (e.g. an automatic top-up), newest first."""
    return list(
        db.scalars(
            select(Payment)
            .where(
                Payment.account_id == account.id,
                Payment.status == PaymentStatus.REQUIRES_ACTION,
                Payment.needs_authentication.is_(True),
            )
            .order_by(Payment.id.desc())
            .limit(3)
        )
    )


def payment_needing_authentication(db: Session, *, account: Account, payment_id: int) -> Payment:
    """The account's own payment that waits for the customer's bank (else NotFound)."""
    payment = db.get(Payment, payment_id) if 0 < payment_id < 2**62 else None
    if payment is None or payment.account_id != account.id:
        raise NotFound(_("No such payment."))
    return payment


def authentication_secret(db: Session, *, account: Account, payment_id: int) -> tuple[Payment, str]:
    """The payment and the client secret for Stripe.js, while authentication is needed."""
    payment = payment_needing_authentication(db, account=account, payment_id=payment_id)
    if payment.status != PaymentStatus.REQUIRES_ACTION or not payment.stripe_payment_intent_id:
        return payment, ""
    return payment, gateway.payment_intent_client_secret(payment.stripe_payment_intent_id)


def finish_authentication(db: Session, *, account: Account, payment_id: int) -> Payment:
    """After Stripe.js: ask Stripe how the PaymentIntent ended and settle it (credits once)."""
    payment = payment_needing_authentication(db, account=account, payment_id=payment_id)
    if payment.status != PaymentStatus.REQUIRES_ACTION or not payment.stripe_payment_intent_id:
        return payment  # already settled (a webhook, or a second click)
    result = gateway.retrieve_payment_intent(payment.stripe_payment_intent_id)
    if result.status == "succeeded":
        return settle_payment_succeeded(
            db,
            payment=payment,
            payment_intent_id=result.payment_intent_id,
            charge_id=result.charge_id,
        )
    if result.status in ("requires_payment_method", "canceled"):
        reason = result.failure_message or "Your bank did not confirm the payment."
        return settle_payment_failed(
            db, payment=payment, message=_("%(reason)s No money was taken.", reason=reason)
        )
    return payment  # still waiting for the bank (or processing): nothing changes yet


def raise_unless_succeeded(payment: Payment) -> None:
    if payment.status == PaymentStatus.SUCCEEDED:
        return
    if payment.status == PaymentStatus.FAILED:
        raise PaymentDeclined(payment.failure_message or "The payment failed. No money was taken.")
    if payment.status == PaymentStatus.REQUIRES_ACTION:
        error = AuthenticationRequired(
            payment.failure_message or gateway.NEEDS_AUTHENTICATION,
            payment_intent_id=payment.stripe_payment_intent_id,
        )
        error.payment_id = payment.id
        raise error
    if payment.status == PaymentStatus.PENDING:
        raise GatewayUnavailable(PENDING_MESSAGE)
    raise DomainError(_("This payment was already refunded."))


def describe_topup(payment: Payment) -> str:
    """The confirmation shown after a successful top-up (and which card paid)."""
    amount = format_amount(payment.amount_minor, payment.currency)
    if payment.paid_by_role == CardRole.SECONDARY.value:
        return _(
            "%(amount)s added to your balance, paid by your backup card (%(card)s):"
            " the primary card failed.",
            amount=amount,
            card=_card_label(payment),
        )
    return _("%(amount)s added to your balance.", amount=amount)
