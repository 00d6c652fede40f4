"""Card codes (VoipNow calling-card codes) and their credit, with the recharge history.

Credit is its own small balance on the card code, not ledger money: an amount in the server
default currency, or the explicit state Unlimited (credit_minor is then None).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import bindparam, case, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import audit, usage
from portal.domain import NotFound, ValidationFailed
from portal.i18n import _, format_number
from portal.models import (
    Account,
    CardCode,
    CardCodeCharge,
    CardCodeRecharge,
    Role,
    User,
    utcnow,
)
from portal.money import format_money, format_plain
from portal.pins import random_digits
from portal.settings import default_currency

CODE_PATTERN = re.compile(r"^\d{4,20}$")
MIN_CODE_LENGTH, MAX_CODE_LENGTH = 4, 20
MAX_GENERATE = 10_000
MAX_CREDIT_MINOR = 100_000_000  # 1,000,000.00: far above any real calling-card credit
INITIAL_ORDER = "Initial credit"
# Generated codes may fill at most this share of their code space, so drawing stays quick.
CODE_SPACE_FRACTION = 10


def _tenant_account(db: Session, actor: User, account_id: int | None) -> Account:
    account = db.get(Account, account_id) if account_id else None
    if account is None or (
        actor.role != Role.OPERATOR and account.reseller_id != actor.reseller_id
    ):
        raise ValidationFailed(_("Choose a customer account."), field="account_id")
    return account


def _check_initial_credit(amount_minor: int | None, unlimited: bool) -> None:
    if unlimited and amount_minor is not None:
        raise ValidationFailed(
            _("Leave the credit empty when you choose Unlimited."), field="initial_credit"
        )
    if amount_minor is not None and not 0 <= amount_minor <= MAX_CREDIT_MINOR:
        raise ValidationFailed(_("Enter a credit from 0 up to 1,000,000."), field="initial_credit")


def _new_card_code(db, actor, account, code, extension, amount_minor, unlimited) -> CardCode:
    card = CardCode(
        reseller_id=account.reseller_id,
        account_id=account.id,
        extension=(extension or "").strip()[:40],
        code=code,
        unlimited=unlimited,
        credit_minor=None if unlimited else (amount_minor or 0),
        currency=default_currency(db),
    )
    db.add(card)
    db.flush()
    if unlimited or amount_minor:
        db.add(
            CardCodeRecharge(
                card_code_id=card.id,
                order_number=INITIAL_ORDER,
                credit_added_minor=card.credit_minor,
                credit_left_minor=card.credit_minor,
                actor_user_id=actor.id,
            )
        )
    return card


def add_card_code(
    db: Session,
    *,
    actor: User,
    account_id: int | None,
    code: str,
    extension: str = "",
    initial_credit_minor: int | None = None,
    unlimited: bool = False,
) -> CardCode:
    """Add one card code (4-20 digits, unique per reseller) to a customer account."""
    code = (code or "").strip()
    if not CODE_PATTERN.match(code):
        raise ValidationFailed(_("A card code is 4 to 20 digits."), field="code")
    account = _tenant_account(db, actor, account_id)
    _check_initial_credit(initial_credit_minor, unlimited)
    if _existing_codes(db, account.reseller_id, [code]):
        raise ValidationFailed(_("That card code is already in use."), field="code")
    card = _new_card_code(db, actor, account, code, extension, initial_credit_minor, unlimited)
    _audit(db, actor, card, "card_codes.add", None, _state(card))
    db.commit()
    return card


def _existing_codes(db: Session, reseller_id: int, codes: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(codes), 2_000):
        part = codes[start : start + 2_000]
        found |= set(
            db.scalars(
                select(CardCode.code).where(
                    CardCode.reseller_id == reseller_id, CardCode.code.in_(part)
                )
            )
        )
    return found


def generate_card_codes(
    db: Session,
    *,
    actor: User,
    account_id: int | None,
    quantity: int,
    code_length: int,
    initial_credit_minor: int | None = None,
    unlimited: bool = False,
) -> list[CardCode]:
    """Generate random card codes of one length for a customer account (unique per reseller)."""
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_GENERATE:
        raise ValidationFailed(
            _("Enter a quantity from 1 to %(max)s.", max=format_number(MAX_GENERATE)),
            field="quantity",
        )
    if not isinstance(code_length, int) or not MIN_CODE_LENGTH <= code_length <= MAX_CODE_LENGTH:
        raise ValidationFailed(_("The code length is 4 to 20 digits."), field="code_length")
    account = _tenant_account(db, actor, account_id)
    _check_initial_credit(initial_credit_minor, unlimited)
    _check_code_space(db, account.reseller_id, quantity, code_length)
    codes = _fresh_codes(db, account.reseller_id, quantity, code_length)
    cards = [
        _new_card_code(db, actor, account, code, "", initial_credit_minor, unlimited)
        for code in codes
    ]
    _audit(
        db,
        actor,
        cards[0],
        "card_codes.generate",
        None,
        {"quantity": quantity, "code_length": code_length, **_state(cards[0])},
    )
    db.commit()
    return cards


def _check_code_space(db: Session, reseller_id: int, quantity: int, length: int) -> None:
    used = db.scalar(
        select(func.count())
        .select_from(CardCode)
        .where(CardCode.reseller_id == reseller_id, func.length(CardCode.code) == length)
    )
    if (used or 0) + quantity > 10**length // CODE_SPACE_FRACTION:
        raise ValidationFailed(
            f"Not enough free {length}-digit codes for {quantity:,} more; choose a longer code.",
            field="code_length",
        )


def _fresh_codes(db: Session, reseller_id: int, quantity: int, length: int) -> list[str]:
    codes: set[str] = set()
    while len(codes) < quantity:
        draw = {random_digits(length) for _draw in range(quantity - len(codes))} - codes
        codes |= draw - _existing_codes(db, reseller_id, sorted(draw))
    return sorted(codes)


# --- credit ----------------------------------------------------------------------------


def credit_hint(card: CardCode) -> str:
    """The Add credit hint: "(currently 12.50 GBP left)" or "(currently Unlimited)"."""
    if card.unlimited:
        return "(currently Unlimited)"
    amount = format_plain(card.credit_minor or 0, card.currency)
    return f"(currently {amount} {card.currency} left)"


def _lock(db: Session, card_id: int) -> CardCode:
    card = db.scalar(
        select(CardCode)
        .where(CardCode.id == card_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if card is None:
        raise NotFound(_("That card code does not exist."))
    return card


def _check_order_number(db: Session, card: CardCode, order_number: str) -> str:
    order_number = (order_number or "").strip()
    if not order_number:
        raise ValidationFailed(_("Enter the order number."), field="order_number")
    if len(order_number) > 60:
        raise ValidationFailed(_("Use at most 60 characters."), field="order_number")
    # One order, one credit allocation: a resubmitted form must not add the credit twice.
    seen = db.scalar(
        select(CardCodeRecharge.id).where(
            CardCodeRecharge.card_code_id == card.id,
            CardCodeRecharge.order_number == order_number,
        )
    )
    if seen is not None:
        raise ValidationFailed(
            _(
                "Order %(order_number)s was already added to this card code.",
                order_number=order_number,
            ),
            field="order_number",
        )
    return order_number


def _new_credit(card: CardCode, amount_minor: int | None, unlimited: bool) -> int | None:
    """Credit Left after the change (None = Unlimited), or a refusal."""
    if unlimited:
        if amount_minor is not None:
            raise ValidationFailed(
                _("Leave the amount empty when you choose Unlimited."), field="amount"
            )
        if card.unlimited:
            raise ValidationFailed(
                _("This card code already has Unlimited credit."), field="amount"
            )
        return None
    if amount_minor is None or amount_minor == 0:
        raise ValidationFailed(
            _("Enter an amount other than zero, or choose Unlimited."), field="amount"
        )
    if abs(amount_minor) > MAX_CREDIT_MINOR:
        raise ValidationFailed(_("Enter an amount up to 1,000,000."), field="amount")
    if card.unlimited:
        if amount_minor > 0:
            raise ValidationFailed(
                _("The credit is Unlimited already; a negative amount limits it to 0."),
                field="amount",
            )
        return 0  # VoipNow: a negative amount on Unlimited stops all calls.
    new_credit = (card.credit_minor or 0) + amount_minor
    if new_credit < 0:
        left = format_money(card.credit_minor or 0, card.currency)
        raise ValidationFailed(
            _("The credit cannot go below 0: this card code has only %(left)s left.", left=left),
            field="amount",
        )
    return new_credit


def _check_currency(db: Session, card: CardCode) -> None:
    currency = default_currency(db)
    if card.currency == currency:
        return
    if card.unlimited or not card.credit_minor:
        card.currency = currency  # nothing to convert: follow the server default
        return
    raise ValidationFailed(
        f"This card code holds credit in {card.currency} but the server currency is now "
        f"{currency}; use up or remove the {card.currency} credit first."
    )


def add_credit(
    db: Session,
    *,
    card_code: CardCode,
    amount_minor: int | None,
    unlimited: bool,
    order_number: str,
    actor: User,
) -> CardCodeRecharge:
    """Add (or with a negative amount, remove) credit, or set Unlimited; one recharge row."""
    card = _lock(db, card_code.id)
    before = _state(card)
    _check_currency(db, card)
    order_number = _check_order_number(db, card, order_number)
    new_credit = _new_credit(card, amount_minor, unlimited)
    card.unlimited = new_credit is None
    card.credit_minor = new_credit
    recharge = CardCodeRecharge(
        card_code_id=card.id,
        order_number=order_number,
        credit_added_minor=None if unlimited else amount_minor,
        credit_left_minor=new_credit,
        actor_user_id=actor.id,
    )
    db.add(recharge)
    _audit(db, actor, card, "card_codes.add_credit", before, _state(card) | {"order": order_number})
    db.commit()
    return recharge


def _state(card: CardCode) -> dict:
    credit = "Unlimited" if card.unlimited else card.credit_minor
    return {"code": card.code, "credit_minor": credit, "currency": card.currency}


def _audit(db, actor: User, card: CardCode, action: str, before, after) -> None:
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=card.reseller_id,
        action=action,
        object_type="card_code",
        object_id=card.id,
        before=before,
        after=after,
    )


# --- lists and search ------------------------------------------------------------------


@dataclass(frozen=True)
class CardCodeRow:
    card: CardCode
    account_number: str
    account_name: str
    recharge_count: int


def list_card_codes(db: Session, *, actor: User, limit: int = 500) -> list[CardCodeRow]:
    """Card codes the admin may see, newest first, with their recharge counts."""
    recharges = (
        select(CardCodeRecharge.card_code_id, func.count().label("n"))
        .group_by(CardCodeRecharge.card_code_id)
        .subquery()
    )
    stmt = (
        select(CardCode, Account.number, Account.name, func.coalesce(recharges.c.n, 0))
        .join(Account, Account.id == CardCode.account_id)
        .outerjoin(recharges, recharges.c.card_code_id == CardCode.id)
        .order_by(CardCode.id.desc())
        .limit(limit)
    )
    if actor.role != Role.OPERATOR:
        stmt = stmt.where(CardCode.reseller_id == actor.reseller_id)
    return [CardCodeRow(*row) for row in db.execute(stmt)]


def search_recharges(
    db: Session,
    *,
    card_code: CardCode,
    order_number: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[CardCodeRecharge]:
    """The Recharge History of one card code, by order number (contains) and date range."""
    stmt = select(CardCodeRecharge).where(CardCodeRecharge.card_code_id == card_code.id)
    order_number = (order_number or "").strip()
    if order_number:
        escaped = order_number.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(CardCodeRecharge.order_number.ilike(f"%{escaped}%", escape="\\"))
    if date_from is not None:
        stmt = stmt.where(CardCodeRecharge.created_at >= _day_start(date_from))
    if date_to is not None:
        stmt = stmt.where(CardCodeRecharge.created_at < _day_start(date_to) + timedelta(days=1))
    order = (CardCodeRecharge.created_at.desc(), CardCodeRecharge.id.desc())
    return list(db.scalars(stmt.order_by(*order).limit(1000)))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# --- Card codes in use: the switch charges calls to a card code's credit ---------------------

USAGE_ROWS = 50


def charge_card_code(
    db: Session, *, reseller_id: int | None, code: str, payload: object
) -> usage.ChargeAnswer:
    """Debit a call charge from a card code's credit once per idempotency key (commits).

    201 with Credit Left; 402 when the credit does not cover it (Credit Left 0: no calls);
    Unlimited never runs out. A replayed key answers what the first request got.
    Four round trips: the card, one credit-checked UPDATE ... RETURNING (its row lock
    serialises charges of one card code), the answer through INSERT ... ON CONFLICT, commit.
    """
    if not isinstance(payload, dict):
        raise usage.ChargeInputError({"body": "Send a JSON object."})
    card_id, currency = _card_ref(db, reseller_id=reseller_id, code=code)
    charge = usage.parse_charge(payload, currency)
    try:
        answer = _charge_credit(db, card_id, currency, charge)
        db.commit()
    except IntegrityError:
        db.rollback()  # a concurrent twin of this request answered first
        answer = _stored_charge(db, card_id, charge)
        if answer is None:
            raise
    return answer


def _card_ref(db: Session, *, reseller_id: int | None, code: str) -> tuple[int, str]:
    """The card code with this code in the token's reseller (an operator token: any, if unique)."""
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise NotFound("No such card code.")
    if reseller_id is None:
        rows = db.connection().execute(_CARD_REF, {"code": code}).all()
    else:
        rows = db.connection().execute(_CARD_REF_IN, {"code": code, "reseller": reseller_id}).all()
    if len(rows) != 1:
        raise NotFound("No such card code.")
    return rows[0][0], rows[0][1]


_CARDS = CardCode.__table__
_CHARGES = CardCodeCharge.__table__
# Built once (the compiled forms stay cached); each charge only binds values.
_CARD_REF = (
    select(_CARDS.c.id, _CARDS.c.currency).where(_CARDS.c.code == bindparam("code")).limit(2)
)
_CARD_REF_IN = _CARD_REF.where(_CARDS.c.reseller_id == bindparam("reseller"))
_LEFT = func.coalesce(_CARDS.c.credit_minor, 0)
_DEBIT_CREDIT = (
    update(_CARDS)
    .where(
        _CARDS.c.id == bindparam("card"),
        or_(_CARDS.c.unlimited == true(), _LEFT >= bindparam("amount")),  # noqa: SIM300
    )
    .values(
        credit_minor=case(
            (_CARDS.c.unlimited == true(), _CARDS.c.credit_minor),
            else_=_LEFT - bindparam("amount"),
        )
    )
    .returning(_CARDS.c.code, _CARDS.c.unlimited, _CARDS.c.credit_minor, _CARDS.c.account_id)
)
_STORE_ANSWER = {
    dialect: insert(_CHARGES)
    .values(
        card_code_id=bindparam("card"),
        idempotency_key=bindparam("key"),
        request_fingerprint=bindparam("fingerprint"),
        amount_minor=bindparam("amount"),
        description=bindparam("description"),
        status_code=bindparam("status"),
        credit_left_minor=bindparam("left"),
        response_json=bindparam("body"),
        created_at=bindparam("at", type_=_CHARGES.c.created_at.type),
    )
    .on_conflict_do_nothing(index_elements=["card_code_id", "idempotency_key"])
    .returning(_CHARGES.c.id)
    for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def _charge_credit(db: Session, card_id: int, currency: str, charge) -> usage.ChargeAnswer:
    amount = charge.amount_minor
    conn = db.connection()
    debited = conn.execute(_DEBIT_CREDIT, {"card": card_id, "amount": amount}).first()
    if debited is None:
        card = db.get(CardCode, card_id, populate_existing=True)
        if card is None:
            raise NotFound("No such card code.")
        status, body = _refusal(card, charge)
        credit_left, account_id = card.credit_minor, card.account_id
    else:
        code, unlimited, credit_left, account_id = debited
        status, body = (
            201,
            {
                "code": code,
                "amount": format_plain(amount, currency),
                "credit_left": "Unlimited"
                if unlimited
                else format_plain(credit_left or 0, currency),
                "currency": currency,
            },
        )
    row_id = conn.execute(
        _STORE_ANSWER[conn.dialect.name],
        {
            "card": card_id,
            "key": charge.idempotency_key,
            "fingerprint": charge.fingerprint,
            "amount": amount,
            "description": charge.description,
            "status": status,
            "left": credit_left,
            # charge_id is the row's own id (added on replay)
            "body": json.dumps(body),
            "at": utcnow(),
        },
    ).scalar()
    if row_id is None:
        db.rollback()  # answered before (PostgreSQL waited for that transaction): undo ours
        stored = _stored_charge(db, card_id, charge)
        if stored is None:
            raise RuntimeError("A card-code charge key conflicted without a stored answer.")
        return stored
    if status == 201:
        body["charge_id"] = row_id
    return usage.ChargeAnswer(status, body, account_id)


def _stored_charge(db: Session, card_id: int, charge) -> usage.ChargeAnswer | None:
    row = db.scalar(
        select(CardCodeCharge).where(
            CardCodeCharge.card_code_id == card_id,
            CardCodeCharge.idempotency_key == charge.idempotency_key,
        )
    )
    if row is None:
        return None
    if row.request_fingerprint != charge.fingerprint:
        raise usage.ChargeInputError(
            {"idempotency_key": "This key was already used for a different charge."}
        )
    card = db.get(CardCode, card_id)
    body = json.loads(row.response_json)
    if row.status_code == 201:
        body.setdefault("charge_id", row.id)
    return usage.ChargeAnswer(row.status_code, body, card.account_id, replayed=True)


def credit_left_text(card: CardCode) -> str:
    return "Unlimited" if card.unlimited else format_plain(card.credit_minor or 0, card.currency)


def _refusal(card: CardCode, charge) -> tuple[int, dict]:
    left = card.credit_minor or 0
    return 402, {
        "error": "insufficient_credit",
        "message": (
            f"Credit Left ({format_money(left, card.currency)}) does not cover this "
            f"charge ({format_money(charge.amount_minor, card.currency)})."
        ),
        "code": card.code,
        "amount": format_plain(charge.amount_minor, card.currency),
        "credit_left": credit_left_text(card),
        "currency": card.currency,
    }


def card_code_usage(db: Session, card: CardCode, limit: int = USAGE_ROWS) -> list[CardCodeCharge]:
    """The latest calls charged to the card code (refused ones too), newest first."""
    return list(
        db.scalars(
            select(CardCodeCharge)
            .where(CardCodeCharge.card_code_id == card.id)
            .order_by(CardCodeCharge.id.desc())
            .limit(limit)
        )
    )
