"""Redeeming top-up cards (vouchers): PIN lookup by keyed hash, exactly-once credit, lockout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal import invoices, ledger
from portal.domain import DomainError, PermissionDenied
from portal.i18n import _, ngettext
from portal.models import (
    Account,
    CardStatus,
    EntryKind,
    RedeemFailure,
    TopupCard,
    User,
    utcnow,
)
from portal.pins import vault

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
# One message for unknown, used, expired and other-reseller PINs: it reveals nothing.
GENERIC_ERROR = "This PIN cannot be redeemed. Check the digits and try again."


class VoucherRejected(DomainError):
    """The PIN did not lead to a redeemable card (deliberately vague)."""


class RedeemLocked(DomainError):
    """Too many failed attempts recently; retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_at: datetime, retry_after: int):
        super().__init__(message, field="pin")
        self.retry_at = retry_at
        self.retry_after = retry_after


@dataclass(frozen=True)
class Redemption:
    card_serial: str
    amount_minor: int
    currency: str
    balance_after_minor: int


def normalise_pin(pin: str) -> str:
    """Digits only: people type PINs with spaces or dashes as printed on the card."""
    return "".join(ch for ch in (pin or "") if ch not in " -\u00a0\t")


def lockout_until(db: Session, *, user_id: int, client_ip: str, now: datetime) -> datetime | None:
    """When redemption unlocks for this user or address, or None if it is not locked."""
    since = now - FAILURE_WINDOW
    until = None
    for condition in (RedeemFailure.user_id == user_id, RedeemFailure.ip == client_ip):
        times = db.scalars(
            select(RedeemFailure.created_at)
            .where(condition, RedeemFailure.created_at > since)
            .order_by(RedeemFailure.created_at.desc())
            .limit(MAX_FAILURES)
        ).all()
        if len(times) >= MAX_FAILURES:
            # Unlocks when the oldest of the last MAX_FAILURES failures leaves the window.
            candidate = times[-1] + FAILURE_WINDOW
            until = candidate if until is None else max(until, candidate)
    return until


def _refuse_if_locked(db: Session, *, user_id: int, client_ip: str, now: datetime) -> None:
    until = lockout_until(db, user_id=user_id, client_ip=client_ip, now=now)
    if until is None:
        return
    seconds = max(1, math.ceil((until - now).total_seconds()))
    minutes = math.ceil(seconds / 60)
    raise RedeemLocked(
        ngettext(
            "Too many wrong PINs. Redeeming is locked; try again at %(time)s UTC"
            " (in %(num)s minute).",
            "Too many wrong PINs. Redeeming is locked; try again at %(time)s UTC"
            " (in %(num)s minutes).",
            minutes,
            time=f"{until:%H:%M}",
        ),
        retry_at=until,
        retry_after=seconds,
    )


def _record_failure(db: Session, *, user_id: int, client_ip: str, now: datetime) -> None:
    # Nothing else of this attempt may be committed with the failure row.
    db.rollback()
    db.add(RedeemFailure(user_id=user_id, ip=client_ip[:64], created_at=now))
    db.commit()


def _find_card(db: Session, account: Account, pin: str, now: datetime) -> TopupCard | None:
    if not pin.isdigit() or not 4 <= len(pin) <= 40:
        return None
    from portal.topup_cards import card_status, status_condition, visible_condition

    card = db.scalar(
        select(TopupCard).where(
            TopupCard.pin_hash == vault().hash(pin),
            status_condition(CardStatus.NEW, now),
            # A batch still generating (or killed mid-way) does not exist yet: its PINs
            # must not be redeemable before the batch is complete and visible.
            visible_condition(),
        )
    )
    if card is None or card.reseller_id != account.reseller_id:
        return None
    if card.currency != account.currency or card.amount_minor <= 0:
        return None
    if card_status(card.status, card.expires_at, now) != CardStatus.NEW:
        return None
    return card


def _claim(db: Session, card: TopupCard, account: Account, now: datetime) -> bool:
    """Mark the card activated unless someone else did first (the row lock decides)."""
    result = db.execute(
        update(TopupCard)
        .where(TopupCard.id == card.id, TopupCard.status != CardStatus.ACTIVATED)
        .values(status=CardStatus.ACTIVATED, activated_at=now, activated_account_id=account.id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def redeem_voucher(
    db: Session, *, user: User, account: Account, pin: str, client_ip: str
) -> Redemption:
    """Credit a top-up card's amount to the account and mark the card activated. Commits."""
    if not user.can_redeem_vouchers:
        raise PermissionDenied(_("You are not allowed to redeem vouchers."))
    now = utcnow()
    _refuse_if_locked(db, user_id=user.id, client_ip=client_ip, now=now)
    card = _find_card(db, account, normalise_pin(pin), now)
    if card is None or not _claim(db, card, account, now):
        _record_failure(db, user_id=user.id, client_ip=client_ip, now=now)
        raise VoucherRejected(GENERIC_ERROR, field="pin")
    posting = ledger.post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.VOUCHER,
        amount_minor=card.amount_minor,
        currency=card.currency,
        description=f"Top-up card {card.serial}",
        reference=card.serial,
        idempotency_key=f"voucher:{card.id}",
        actor_user_id=user.id,
    )
    if not posting.replayed:
        source = f"Top-up card {card.serial}"
        invoices.settle_credit(db, account=account, amount_minor=card.amount_minor, source=source)
    db.commit()
    return Redemption(
        card.serial, card.amount_minor, card.currency, posting.entry.balance_after_minor
    )
