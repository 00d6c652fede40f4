"""Reading the audit log (newest first, keyset pages): filters, readable changes, CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from portal.i18n import _, _l, format_amount
from portal.models import Account, AuditLog, Reseller, User
from portal.topup_cards import neutralise

PAGE_SIZE = 50
CSV_LIMIT = 100_000

# Human names of the fields the audit rows record (anything else: "some_field" -> "Some field").
FIELD_LABELS = {
    "credit_limit_minor": _l("Credit limit"),
    "temp_increase_minor": _l("Temporary increase"),
    "temp_increase_percent": _l("Temporary increase (%)"),
    "temp_increase_valid_until": _l("Temporary increase valid until"),
    "amount_minor": _l("Amount"),
    "price_minor": _l("Price"),
    "threshold_minor": _l("Threshold"),
    "customer_class_id": _l("Customer class"),
    "tax_rate_bp": _l("Tax rate (basis points)"),
    "default_currency": _l("Default currency"),
    "invoice_net_days": _l("Invoice payment terms (days)"),
    "invoice_reminder_days": _l("Reminder days"),
    "pin_length": _l("PIN length"),
    "expires_at": _l("Expires"),
    "card_ids": _l("Cards"),
    "email": _l("Email"),
    "ip": _l("IP address"),
}
# Human names of the actions (anything else: "customer.update" -> "Customer update").
ACTION_LABELS = {
    "auth.sign_in": _l("Signed in"),
    "auth.sign_in_failed": _l("Sign-in failed"),
    "auth.sign_out_everywhere": _l("Signed out everywhere"),
    "customer.create": _l("Customer created"),
    "customer.update": _l("Customer changed"),
    "credit.limit": _l("Credit limit changed"),
    "payment.refund": _l("Payment refunded"),
    "payment.chargeback": _l("Chargeback"),
    "payment.dispute_created": _l("Dispute opened"),
    "invoices.void": _l("Invoice voided"),
    "settings.update": _l("Settings changed"),
    "api_token.create": _l("API token created"),
    "api_token.revoke": _l("API token revoked"),
}


@dataclass(frozen=True)
class AuditFilters:
    who: str = ""  # part of the actor's email; "system" for rows without a person
    action: str = ""  # the start of the action, e.g. "credit."
    date_from: date | None = None
    date_to: date | None = None


@dataclass(frozen=True)
class Change:
    label: str
    before: str
    after: str


@dataclass
class AuditEntry:
    row: AuditLog
    actor: str | None
    what: str = ""
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEntry]
    next_before_id: int | None


def field_label(key: str) -> str:
    if key in FIELD_LABELS:
        return str(FIELD_LABELS[key])
    name = key.removesuffix("_minor").removesuffix("_id").replace("_", " ").strip()
    return _(name[:1].upper() + name[1:])  # translated when it is a word of the catalogue


def action_label(action: str) -> str:
    if action in ACTION_LABELS:
        return str(ACTION_LABELS[action])
    text = action.replace(".", " ").replace("_", " ").strip()
    return _(text[:1].upper() + text[1:])


def _value(key: str, value: Any, currency: str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(_l("Yes") if value else _l("No"))
    if key.endswith("_minor") and isinstance(value, int):
        if currency:
            return format_amount(value, currency)
        return f"{value / 100:.2f}"  # no currency known: a plain amount, never raw pence
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _load(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"value": text}
    return data if isinstance(data, dict) else {"value": data}


def changes(before: dict | None, after: dict | None, currency: str | None) -> list[Change]:
    """Field by field: changed ones (before -> after), and fields only one side records."""
    before, after = before or {}, after or {}
    currency = after.get("currency") or before.get("currency") or currency
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        currency = None
    out = []
    for key in list(dict.fromkeys([*before, *after])):
        old = before.get(key) if key in before else None
        new = after.get(key) if key in after else None
        if key in before and key in after and old == new:
            continue
        out.append(
            Change(
                field_label(key),
                _value(key, old, currency) if key in before else "",
                _value(key, new, currency) if key in after else "",
            )
        )
    return out


def _filtered(stmt: Select, filters: AuditFilters) -> Select:
    action = (filters.action or "").strip().lower()[:60]
    if action:
        stmt = stmt.where(func.lower(AuditLog.action).like(f"{_escape(action)}%", escape="\\"))
    who = (filters.who or "").strip().lower()[:254]
    if who:
        match = func.lower(User.email).like(f"%{_escape(who)}%", escape="\\")
        if who in ("system", str(_l("System")).lower()):
            match = or_(match, AuditLog.actor_user_id.is_(None))
        stmt = stmt.where(match)
    if filters.date_from is not None:
        stmt = stmt.where(AuditLog.created_at >= _day_start(filters.date_from))
    if filters.date_to is not None:
        stmt = stmt.where(AuditLog.created_at < _day_start(filters.date_to + timedelta(days=1)))
    return stmt


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _currencies(db: Session, rows: list[AuditLog]) -> dict[int, str]:
    """The currency each row's money is in: the account's (account rows), else the reseller's."""
    account_ids = {
        int(r.object_id)
        for r in rows
        if r.object_type == "account" and r.object_id.isdigit() and len(r.object_id) < 19
    }
    by_account = (
        dict(
            db.execute(
                select(Account.id, Account.currency).where(Account.id.in_(account_ids))
            ).all()
        )
        if account_ids
        else {}
    )
    reseller_ids = {r.reseller_id for r in rows if r.reseller_id is not None}
    by_reseller = (
        dict(
            db.execute(
                select(Reseller.id, Reseller.currency).where(Reseller.id.in_(reseller_ids))
            ).all()
        )
        if reseller_ids
        else {}
    )
    out = {}
    for r in rows:
        if r.object_type == "account" and r.object_id.isdigit() and int(r.object_id) in by_account:
            out[r.id] = by_account[int(r.object_id)]
        elif r.reseller_id in by_reseller:
            out[r.id] = by_reseller[r.reseller_id]
    return out


def _entries(db: Session, rows: list[tuple[AuditLog, str | None]]) -> list[AuditEntry]:
    currencies = _currencies(db, [row for row, _ in rows])
    return [
        AuditEntry(
            row,
            email,
            action_label(row.action),
            changes(_load(row.before), _load(row.after), currencies.get(row.id)),
        )
        for row, email in rows
    ]


def _select(scoped: Select, filters: AuditFilters) -> Select:
    stmt = scoped.add_columns(User.email).outerjoin(User, User.id == AuditLog.actor_user_id)
    return _filtered(stmt, filters)


def audit_page(
    db: Session,
    *,
    scoped: Select,
    filters: AuditFilters | None = None,
    action: str = "",
    before_id: int | None = None,
) -> AuditPage:
    """Audit rows of `scoped` (security.tenant_select(AuditLog)) matching `filters`."""
    filters = filters or AuditFilters(action=action)
    stmt = _select(scoped, filters)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    rows = db.execute(stmt.order_by(AuditLog.id.desc()).limit(PAGE_SIZE + 1)).all()
    page = [(row[0], row[1]) for row in rows[:PAGE_SIZE]]
    more = len(rows) > PAGE_SIZE
    return AuditPage(_entries(db, page), page[-1][0].id if more and page else None)


CSV_HEADER = [
    "When (UTC)",
    "Who",
    "IP address",
    "What",
    "Action",
    "Object",
    "Field",
    "Before",
    "After",
]


def audit_csv(db: Session, *, scoped: Select, filters: AuditFilters) -> str:
    """Every matching row, one line per changed field; text cells neutralised against formulas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    stmt = _select(scoped, filters).order_by(AuditLog.id.desc()).limit(CSV_LIMIT)
    rows = [(row[0], row[1]) for row in db.execute(stmt).all()]
    for entry in _entries(db, rows):
        row = entry.row
        base = [
            row.created_at.strftime("%Y-%m-%d %H:%M:%S") if row.created_at else "",
            entry.actor or "System",
            row.ip or "",
            entry.what,
            row.action,
            f"{row.object_type} {row.object_id}".strip(),
        ]
        for change in entry.changes or [Change("", "", "")]:
            cells = [*base, change.label, change.before, change.after]
            writer.writerow([neutralise(cell) for cell in cells])
    return buffer.getvalue()
