"""Subscriber-to-subscriber transfers: both ledger entries in one transaction, or none."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import invoices, ledger
from portal.credit import transfers_resolved
from portal.domain import DomainError, ValidationFailed
from portal.i18n import _, format_amount
from portal.models import Account, AccountStatus, EntryKind

NUMBER_MAX_LENGTH = 32


class TransferRefused(DomainError):
    """A transfer the rules do not allow (settings, currency, funds)."""


@dataclass(frozen=True)
class Transfer:
    recipient_number: str
    recipient_name: str
    amount_minor: int
    currency: str
    sender_balance_after_minor: int
    replayed: bool = False


def _find_recipient(db: Session, sender: Account, recipient_number: str) -> Account:
    number = (recipient_number or "").strip()
    recipient = None
    if number and len(number) <= NUMBER_MAX_LENGTH:
        recipient = db.scalar(
            select(Account).where(
                Account.number == number, Account.reseller_id == sender.reseller_id
            )
        )
    # Unknown numbers and other resellers' accounts get the same answer: they don't exist here.
    if recipient is None:
        raise ValidationFailed(
            _("No account with that number can receive transfers from you. Check the number."),
            field="recipient",
        )
    if recipient.id == sender.id:
        raise ValidationFailed(_("You cannot transfer to your own account."), field="recipient")
    return recipient


def _check_rules(sender: Account, recipient: Account, amount_minor: int) -> None:
    if not transfers_resolved(sender) or sender.status != AccountStatus.ACTIVE:
        raise TransferRefused(_("Your account is not allowed to transfer funds."))
    if not transfers_resolved(recipient) or recipient.status != AccountStatus.ACTIVE:
        raise TransferRefused(
            _("Account %(number)s is not allowed to receive transfers.", number=recipient.number),
            field="recipient",
        )
    if recipient.currency != sender.currency:
        raise TransferRefused(
            _(
                "Account %(number)s is in %(currency)s; transfers need the same currency.",
                number=recipient.number,
                currency=recipient.currency,
            ),
            field="recipient",
        )
    available = ledger.available_funds(sender)
    if available - amount_minor < 0:
        raise TransferRefused(
            _(
                "Your available funds (%(available)s) do not cover %(amount)s.",
                available=format_amount(available, sender.currency),
                amount=format_amount(amount_minor, sender.currency),
            ),
            field="amount",
        )


@dataclass(frozen=True)
class TransferReview:
    """What a transfer would do, shown before the person sends it (nothing is written)."""

    sender_number: str
    sender_name: str
    recipient_number: str
    recipient_name: str
    amount_minor: int
    currency: str
    sender_available_after_minor: int


def review_transfer(
    db: Session, *, sender_account: Account, recipient_number: str, amount_minor: int
) -> TransferReview:
    """The same checks as `transfer_funds`, without locks or writes. Raises the same errors."""
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise ValidationFailed(_("Enter an amount greater than zero."), field="amount")
    recipient = _find_recipient(db, sender_account, recipient_number)
    _check_rules(sender_account, recipient, amount_minor)
    return TransferReview(
        sender_account.number,
        sender_account.name,
        recipient.number,
        recipient.name,
        amount_minor,
        sender_account.currency,
        ledger.available_funds(sender_account) - amount_minor,
    )


def transfer_funds(
    db: Session,
    *,
    sender_account: Account,
    recipient_number: str,
    amount_minor: int,
    actor_user_id: int | None,
    idempotency_key: str,
) -> Transfer:
    """Move available funds to another account of the same reseller. Commits."""
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise ValidationFailed(_("Enter an amount greater than zero."), field="amount")
    try:
        recipient = _find_recipient(db, sender_account, recipient_number)
        # Fixed lock order (ascending id): crossing transfers A->B and B->A never deadlock.
        locked = ledger.lock_accounts(db, [sender_account.id, recipient.id])
        sender, recipient = locked[sender_account.id], locked[recipient.id]
        replay = ledger.find_entry(db, sender.id, idempotency_key)
        if replay is None:
            _check_rules(sender, recipient, amount_minor)
            _post_both(db, sender, recipient, amount_minor, actor_user_id, idempotency_key)
        db.commit()
    except DomainError:
        db.rollback()
        raise
    after = replay.balance_after_minor if replay else sender.balance_minor
    amount = -replay.amount_minor if replay else amount_minor
    return Transfer(
        recipient.number, recipient.name, amount, sender.currency, after, replayed=bool(replay)
    )


def _post_both(db, sender, recipient, amount_minor, actor_user_id, idempotency_key) -> None:
    ledger.post_entry(
        db,
        account_id=sender.id,
        account=sender,
        kind=EntryKind.TRANSFER_OUT,
        amount_minor=-amount_minor,
        description=f"Transfer to {recipient.number}",
        reference=recipient.number,
        idempotency_key=idempotency_key,
        actor_user_id=actor_user_id,
        require_funds=True,
    )
    ledger.post_entry(
        db,
        account_id=recipient.id,
        account=recipient,
        kind=EntryKind.TRANSFER_IN,
        amount_minor=amount_minor,
        description=f"Transfer from {sender.number}",
        reference=sender.number,
        # Keys are unique per account: scope the recipient's key by the sender.
        idempotency_key=f"transfer-in:{sender.id}:{idempotency_key}"[:120],
        actor_user_id=actor_user_id,
    )
    source = f"Transfer from {sender.number}"
    invoices.settle_credit(db, account=recipient, amount_minor=amount_minor, source=source)
