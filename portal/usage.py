"""Call charges posted by the switch: validate, debit the ledger once, remember the answer."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import jobs, ledger
from portal.domain import NotFound, ValidationFailed
from portal.models import Account, AccountStatus, ApiCharge, utcnow
from portal.money import MoneyError, format_money, format_plain, parse_amount

MAX_DESCRIPTION = 200
MAX_KEY = 100
MAX_ACCOUNT_NUMBER = 32


class ChargeInputError(ValidationFailed):
    """Bad request fields; `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("The request has invalid fields.")
        self.errors = errors


@dataclass(frozen=True)
class ChargeAnswer:
    status: int
    body: dict
    account_id: int
    replayed: bool = False
    # A durable funds check was queued with the debit (drain it after the commit).
    checks_queued: bool = False


@dataclass(frozen=True)
class ChargeRequest:
    amount_minor: int
    description: str
    idempotency_key: str

    @property
    def fingerprint(self) -> str:
        raw = f"{self.amount_minor}|{self.description}"
        return hashlib.sha256(raw.encode()).hexdigest()


def find_account(db: Session, *, reseller_id: int | None, number: str) -> Account:
    """The account with this number inside the reseller's scope (None: any reseller)."""
    if not number or len(number) > MAX_ACCOUNT_NUMBER:
        raise NotFound("No such account.")
    stmt = select(Account).where(Account.number == number)
    if reseller_id is not None:
        stmt = stmt.where(Account.reseller_id == reseller_id)
    account = db.scalar(stmt)
    if account is None:
        raise NotFound("No such account.")
    return account


def _text_field(payload: dict, name: str, limit: int, errors: dict) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        errors[name] = f"{name} is required and must be a non-empty string."
        return ""
    if len(value) > limit or not value.isprintable():
        errors[name] = f"{name} must be at most {limit} printable characters."
        return ""
    return value.strip()


def _amount_field(payload: dict, currency: str, errors: dict) -> int:
    value = payload.get("amount")
    if not isinstance(value, str):
        errors["amount"] = 'amount is required as a decimal string, e.g. "1.25".'
        return 0
    try:
        return parse_amount(value, currency)
    except MoneyError as exc:
        errors["amount"] = str(exc)
        return 0


def parse_charge(payload: object, currency: str) -> ChargeRequest:
    """Validate a charge body; raises ChargeInputError listing every bad field."""
    if not isinstance(payload, dict):
        raise ChargeInputError({"body": "Send a JSON object."})
    errors: dict[str, str] = {}
    amount_minor = _amount_field(payload, currency, errors)
    description = _text_field(payload, "description", MAX_DESCRIPTION, errors)
    key = _text_field(payload, "idempotency_key", MAX_KEY, errors)
    if errors:
        raise ChargeInputError(errors)
    return ChargeRequest(amount_minor, description, key)


def balance_view(account: Account) -> dict:
    """Balance, credit limit and available funds as decimal strings."""
    currency = account.currency
    return {
        "account": account.number,
        "balance": format_plain(account.balance_minor, currency),
        "credit_limit": format_plain(ledger.effective_credit_limit(account), currency),
        "available_funds": format_plain(ledger.available_funds(account), currency),
        "currency": currency,
    }


def record_charge(
    db: Session, *, reseller_id: int | None, account_number: str, payload: object
) -> ChargeAnswer:
    """Debit a call charge once per idempotency key and commit; replays get the first answer.

    Four round trips: the account's id, the debit (one statement on PostgreSQL), the answer
    stored through INSERT ... ON CONFLICT DO NOTHING, the commit. A replayed key meets the
    stored answer (or the ledger's own key) and rolls its attempt back.
    """
    if not isinstance(payload, dict):
        raise ChargeInputError({"body": "Send a JSON object."})
    account_id, currency = _account_ref(db, reseller_id, account_number)
    charge = parse_charge(payload, currency)
    try:
        answer = _charge(db, account_id, account_number, charge)
        db.commit()
    except IntegrityError:
        # A replay (or its concurrent twin) met the ledger's key: the first answer stands.
        db.rollback()
        answer = _stored_answer(db, account_id, charge)
        if answer is None:
            raise
    return answer


# Built once (the compiled form stays cached); each charge only binds values.
_ACCOUNT_REF = select(Account.id, Account.currency).where(Account.number == bindparam("number"))
_ACCOUNT_REF_IN = _ACCOUNT_REF.where(Account.reseller_id == bindparam("reseller"))
_STORE_ANSWER = {
    dialect: insert(ApiCharge.__table__)
    .values(
        account_id=bindparam("account_id"),
        idempotency_key=bindparam("key"),
        request_fingerprint=bindparam("fingerprint"),
        status_code=bindparam("status"),
        response_json=bindparam("body"),
        created_at=bindparam("at", type_=ApiCharge.__table__.c.created_at.type),
    )
    .on_conflict_do_nothing(index_elements=["account_id", "idempotency_key"])
    .returning(ApiCharge.__table__.c.id)
    for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


ACCOUNT_REFS_MAX = 100_000


def _account_ref(db: Session, reseller_id: int | None, number: str) -> tuple[int, str]:
    """(id, currency) of the account with this number in the token's scope.

    Remembered per app: an account's number, reseller and currency never change once it
    exists (nothing updates them, accounts are not deleted), so a hit can never be stale;
    its status and money are read by the debit itself. Misses are not remembered.
    """
    if not number or len(number) > MAX_ACCOUNT_NUMBER:
        raise NotFound("No such account.")
    refs = current_app.extensions.setdefault("account_refs", {})
    key = (reseller_id, number)
    hit = refs.get(key)
    if hit is not None:
        return hit
    if reseller_id is None:
        row = db.connection().execute(_ACCOUNT_REF, {"number": number}).first()
    else:
        row = (
            db.connection()
            .execute(_ACCOUNT_REF_IN, {"number": number, "reseller": reseller_id})
            .first()
        )
    if row is None:
        raise NotFound("No such account.")
    if len(refs) >= ACCOUNT_REFS_MAX:
        refs.clear()
    refs[key] = (row[0], row[1])
    return refs[key]


def _charge(db: Session, account_id: int, number: str, charge: ChargeRequest) -> ChargeAnswer:
    debit = ledger.debit_usage(
        db,
        account_id=account_id,
        amount_minor=charge.amount_minor,
        description=charge.description,
        idempotency_key=f"api:{charge.idempotency_key}",
    )
    if debit is None:
        account = db.get(Account, account_id, populate_existing=True)
        status, body = 402, _refusal_body(account, charge)
    else:
        status, body = 201, _debited_body(number, debit, charge)
    conn = db.connection()
    stored = conn.execute(
        _STORE_ANSWER[conn.dialect.name],
        {
            "account_id": account_id,
            "key": charge.idempotency_key,
            "fingerprint": charge.fingerprint,
            "status": status,
            "body": json.dumps(body),
            "at": utcnow(),
        },
    ).scalar()
    if stored is None:
        # The key was answered before (PostgreSQL waited for that transaction): undo ours.
        db.rollback()
        answer = _stored_answer(db, account_id, charge)
        if answer is None:
            raise RuntimeError("An API charge key conflicted without a stored answer.")
        return answer
    queued = False
    if debit is not None and _checks_enabled() and jobs.funds_check_needed(debit.funds):
        jobs.queue_funds_check(db, account_id)  # same transaction: a crash cannot lose it
        queued = True
    return ChargeAnswer(status, body, account_id, checks_queued=queued)


def _checks_enabled() -> bool:
    return current_app.config.get("AFTER_DEBIT_CHECKS", "thread") != "off"


def _debited_body(number: str, debit: ledger.UsageDebit, charge: ChargeRequest) -> dict:
    funds = debit.funds
    currency = funds.currency
    limit = ledger.effective_credit_limit(funds)
    return {
        "account": number,
        "balance": format_plain(funds.balance_minor, currency),
        "credit_limit": format_plain(limit, currency),
        "available_funds": format_plain(funds.balance_minor + limit, currency),
        "currency": currency,
        "entry_id": debit.entry_id,
        "amount": format_plain(charge.amount_minor, currency),
    }


def _refusal_body(account: Account, charge: ChargeRequest) -> dict:
    if account.status != AccountStatus.ACTIVE:
        return _refusal(account, charge, "account_inactive", "The account is not active.")
    available = ledger.available_funds(account)
    message = (
        f"Available funds ({format_money(available, account.currency)}) do not cover "
        f"this charge ({format_money(charge.amount_minor, account.currency)})."
    )
    return _refusal(account, charge, "insufficient_funds", message)


def _stored_answer(db: Session, account_id: int, charge: ChargeRequest) -> ChargeAnswer | None:
    row = db.scalar(
        select(ApiCharge).where(
            ApiCharge.account_id == account_id,
            ApiCharge.idempotency_key == charge.idempotency_key,
        )
    )
    if row is None:
        return None
    if row.request_fingerprint != charge.fingerprint:
        raise ChargeInputError(
            {"idempotency_key": "This key was already used for a different charge."}
        )
    return ChargeAnswer(row.status_code, json.loads(row.response_json), account_id, replayed=True)


def _refusal(account: Account, charge: ChargeRequest, code: str, message: str) -> dict:
    return {
        "error": code,
        "message": message,
        "amount": format_plain(charge.amount_minor, account.currency),
        "available_funds": format_plain(ledger.available_funds(account), account.currency),
        "currency": account.currency,
    }


# --- Demo: simulated call usage -------------------------------------------------------------


def simulate_usage(
    db: Session, *, account_numbers: list[str], count: int, rng: random.Random
) -> list[ChargeAnswer]:
    """Post `count` random call charges over the accounts through record_charge."""
    answers = []
    for _ in range(count):
        minutes = rng.randint(1, 30)
        payload = {
            "amount": f"{minutes * rng.choice([2, 3, 5]) / 100:.2f}",
            "description": f"Call to +44 20 7{rng.randint(0, 999):03d} {rng.randint(0, 9999):04d}"
            f", {minutes} min",
            "idempotency_key": f"sim-{uuid.uuid4().hex}",
        }
        number = rng.choice(account_numbers)
        answers.append(record_charge(db, reseller_id=None, account_number=number, payload=payload))
    return answers


@click.command("simulate-usage")
@click.option("--count", type=click.IntRange(1, 100000), default=20, help="How many charges.")
@click.option("--accounts", default="100001,100002,100003", help="Comma-separated account numbers.")
@click.option("--seed", type=int, default=None, help="Random seed (repeatable runs).")
@with_appcontext
def simulate_usage_command(count: int, accounts: str, seed: int | None) -> None:
    """Post random call charges to demo accounts, then run their auto-recharge/warning checks."""
    from portal import db as portal_db
    from portal.jobs import after_debit_checks

    numbers = [n.strip() for n in accounts.split(",") if n.strip()]
    session = portal_db.session()
    try:
        answers = simulate_usage(
            session, account_numbers=numbers, count=count, rng=random.Random(seed)
        )
    except NotFound as exc:
        raise click.ClickException(f"{exc.message} Known accounts: {accounts}") from exc
    for answer in answers:
        click.echo(f"{answer.status} {json.dumps(answer.body)}")
    app = current_app._get_current_object()
    for account_id in sorted({a.account_id for a in answers if a.status == 201}):
        after_debit_checks(app, account_id)
    click.echo(f"{sum(a.status == 201 for a in answers)} of {len(answers)} charges debited.")
