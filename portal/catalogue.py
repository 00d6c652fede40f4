"""Catalogue and settings: plans, licenses, add-ons, top-up products, resellers, customer
classes and the server settings. Every change is audited; deleting what is in use is refused.
"""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import audit, settings
from portal.auth.service import hash_password
from portal.credit import parse_thresholds
from portal.customers import check_new_user_email, check_password_rules
from portal.db import Base
from portal.domain import DomainError
from portal.i18n import N_, _
from portal.models import (
    Account,
    AccountAddOn,
    AddOn,
    BillingModel,
    CustomerClass,
    Plan,
    PlanLicense,
    Reseller,
    Role,
    Subscription,
    TopupProduct,
    User,
)
from portal.money import supported_currencies

_TAX = re.compile(r"^\d{1,3}(\.\d{1,2})?$")


class CatalogueError(DomainError):
    """A refused catalogue or settings change."""


# The fields an admin edits, which are also what the audit row shows before/after.
FIELDS: dict[type, tuple[str, ...]] = {
    Plan: ("name", "price_minor", "currency", "sort_order", "active"),
    PlanLicense: ("service", "label", "limit", "sort_order"),
    AddOn: ("service", "label", "units", "price_minor", "currency", "active"),
    TopupProduct: ("label", "amount_minor", "currency", "active"),
    Reseller: ("name", "currency"),
    CustomerClass: (
        "name",
        "transfers_allowed",
        "max_increase_minor",
        "max_increase_percent",
        "max_increase_days",
        "default_warning_thresholds",
    ),
}

# What makes an object "in use": (foreign key column, why it cannot go).
IN_USE: dict[type, list[tuple]] = {
    Plan: [(Subscription.plan_id, "customers subscribe to this plan")],
    AddOn: [(AccountAddOn.addon_id, "customers have bought this add-on")],
    CustomerClass: [(Account.customer_class_id, "customer accounts belong to this class")],
    PlanLicense: [],
    TopupProduct: [],
}

NAMES = {
    Plan: N_("plan"),
    PlanLicense: N_("license"),
    AddOn: N_("add-on"),
    TopupProduct: N_("top-up product"),
    Reseller: N_("reseller"),
    CustomerClass: N_("customer class"),
}


def snapshot(item) -> dict:
    """The editable fields of a catalogue object (for the audit log)."""
    return {name: getattr(item, name) for name in FIELDS[type(item)]}


def _reseller_of(item) -> int | None:
    # Rows about a reseller itself are the operator's (they must not block its deletion).
    return None if isinstance(item, Reseller) else getattr(item, "reseller_id", None)


def _reseller_references() -> list[tuple]:
    """Every column that points at a reseller (found from the schema, so none is forgotten)."""
    references = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if any(fk.column.table.name == "resellers" for fk in column.foreign_keys):
                what = table.name.replace("_", " ")
                references.append((column, f"it still has {what}"))
    return references


def _record(db, actor, item, action, before, after) -> None:
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=_reseller_of(item),
        action=f"{NAMES[type(item)].replace(' ', '_')}.{action}",
        object_type=type(item).__name__,
        object_id=item.id,
        before=before,
        after=after,
    )


def _check_unique(db: Session, item, values: dict) -> None:
    name = values.get("name")
    if isinstance(item, Reseller) and name:
        # Folded in Python: SQLite's lower() folds ASCII only (resellers are few).
        others = db.scalars(select(Reseller.name).where(Reseller.id != (item.id or 0)))
        if any(other.casefold() == name.casefold() for other in others):
            raise CatalogueError(_("A reseller with this name already exists."), field="name")
    if isinstance(item, CustomerClass) and name:
        clash = select(CustomerClass.id).where(
            CustomerClass.reseller_id == item.reseller_id,
            or_(CustomerClass.name == name, func.lower(CustomerClass.name) == func.lower(name)),
            CustomerClass.id != (item.id or 0),
        )
        if db.scalar(clash):
            raise CatalogueError(_("This reseller already has a class of this name."), field="name")
    if isinstance(item, PlanLicense) and values.get("service"):
        clash = select(PlanLicense.id).where(
            PlanLicense.plan_id == item.plan_id,
            PlanLicense.service == values["service"],
            PlanLicense.id != (item.id or 0),
        )
        if db.scalar(clash):
            raise CatalogueError(_("This plan already has a license for it."), field="service")


def _check_values(db: Session, item, values: dict) -> None:
    unknown = set(values) - set(FIELDS[type(item)])
    if unknown:
        raise CatalogueError(_("Unknown fields: %(fields)s.", fields=", ".join(sorted(unknown))))
    if "currency" in values and values["currency"] not in supported_currencies():
        raise CatalogueError(_("Choose a supported currency."), field="currency")
    for field in ("price_minor", "amount_minor", "units", "limit", "max_increase_minor"):
        value = values.get(field)
        if value is not None and (isinstance(value, bool) or value < 0):
            raise CatalogueError(_("Enter a value of 0 or more."), field=field)
    if isinstance(item, CustomerClass):
        currency = db.get(Reseller, item.reseller_id).currency
        # Postpaid rules allow both amounts and percentages, the widest valid list.
        try:
            parse_thresholds(
                values.get("default_warning_thresholds", ""), BillingModel.POSTPAID, currency
            )
        except DomainError as exc:
            raise CatalogueError(exc.message, field="default_warning_thresholds") from exc
    _check_unique(db, item, values)


def save_item(db: Session, *, item, values: dict, actor: User):
    """Create (item has no id yet) or update a catalogue object with `values`."""
    _check_values(db, item, values)
    created = item.id is None
    before = None if created else snapshot(item)
    for name, value in values.items():
        setattr(item, name, value)
    db.add(item)
    try:
        db.flush()
    except IntegrityError as exc:  # a clash the checks above could not see (a race)
        db.rollback()
        field = "name" if "name" in values else None
        raise CatalogueError(_("This name is already taken."), field=field) from exc
    _record(db, actor, item, "create" if created else "update", before, snapshot(item))
    db.commit()
    return item


def in_use_reason(db: Session, item) -> str | None:
    """Why the object cannot be deleted, or None when nothing uses it."""
    checks = _reseller_references() if isinstance(item, Reseller) else IN_USE[type(item)]
    for column, reason in checks:
        if db.scalar(select(column).where(column == item.id).limit(1)) is not None:
            return reason
    return None


def delete_item(db: Session, *, item, actor: User) -> None:
    """Delete a catalogue object unless something uses it."""
    reason = in_use_reason(db, item)
    if reason:
        raise CatalogueError(
            _(
                "This %(type)s cannot be deleted: %(reason)s.",
                type=_(NAMES[type(item)]),
                reason=reason,
            )
        )
    _record(db, actor, item, "delete", snapshot(item), None)
    db.delete(item)
    db.commit()


# --- Reseller admins ------------------------------------------------------------------------


def create_reseller_admin(
    db: Session, *, reseller: Reseller, actor: User, email: str, name: str, password: str
) -> User:
    """Add an admin user who manages only this reseller's objects."""
    email = check_new_user_email(db, email)
    check_password_rules(password)
    user = User(
        email=email,
        name=(name or "").strip()[:200],
        password_hash=hash_password(password),
        role=Role.RESELLER_ADMIN,
        reseller_id=reseller.id,
    )
    db.add(user)
    db.flush()
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=reseller.id,
        action="reseller_admin.create",
        object_type="User",
        object_id=user.id,
        after={"email": email, "name": user.name},
    )
    db.commit()
    return user


def reseller_admins(db: Session, reseller: Reseller) -> list[User]:
    """The admin users of a reseller."""
    return list(
        db.scalars(
            select(User)
            .where(User.reseller_id == reseller.id, User.role == Role.RESELLER_ADMIN)
            .order_by(User.email)
        )
    )


# --- Server settings -------------------------------------------------------------------------


def parse_tax_rate(text: str) -> int:
    """'20' or '17.5' (percent, at most 2 decimals) -> basis points (2000, 1750)."""
    raw = (text or "").strip().rstrip("%").strip()
    if not _TAX.match(raw):
        raise CatalogueError(
            _("Enter a percentage such as 20 or 17.50 (at most 2 decimals)."), field="tax_rate"
        )
    value = Decimal(raw)
    if value > 100:
        raise CatalogueError(_("The tax rate cannot be above 100%."), field="tax_rate")
    return int(value * 100)


def format_tax_rate(basis_points: int) -> str:
    """2000 -> '20.00'."""
    return f"{Decimal(basis_points) / 100:.2f}"


def current_settings(db: Session) -> dict:
    """The server default currency and the invoice tax rate (basis points)."""
    return {
        "default_currency": settings.default_currency(db),
        "tax_rate_bp": int(settings.get_setting(db, "tax_rate_bp")),
        "invoice_net_days": settings.get_setting(db, "invoice_net_days"),
        "invoice_reminder_days": settings.get_setting(db, "invoice_reminder_days"),
    }


def parse_reminder_days(text: str) -> str:
    """ "1, 7, 14" -> the same, normalised; whole days 1 to 365, at most 10 of them."""
    parts = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(parts) > 10 or not all(
        p.isascii() and p.isdigit() and 1 <= int(p) <= 365 for p in parts
    ):
        raise CatalogueError(
            _("Enter up to 10 whole numbers of days from 1 to 365, separated by commas."),
            field="invoice_reminder_days",
        )
    return ", ".join(str(day) for day in sorted({int(p) for p in parts}))


def update_settings(
    db: Session,
    *,
    default_currency: str,
    tax_rate_bp: int,
    actor: User,
    invoice_net_days: int | None = None,
    invoice_reminder_days: str | None = None,
) -> None:
    """Change the server default currency, the invoice tax rate and the payment terms."""
    if invoice_net_days is not None and (
        isinstance(invoice_net_days, bool) or not 0 <= invoice_net_days <= 365
    ):
        raise CatalogueError(_("Enter 0 to 365 days."), field="invoice_net_days")
    reminders = (
        None if invoice_reminder_days is None else parse_reminder_days(invoice_reminder_days)
    )
    if default_currency not in supported_currencies():
        raise CatalogueError(_("Choose a supported currency."), field="default_currency")
    if isinstance(tax_rate_bp, bool) or not isinstance(tax_rate_bp, int):
        raise CatalogueError(_("Enter a tax rate."), field="tax_rate")
    if not 0 <= tax_rate_bp <= 10_000:
        raise CatalogueError(_("The tax rate must be from 0% to 100%."), field="tax_rate")
    before = current_settings(db)
    settings.set_setting(db, "default_currency", default_currency)
    settings.set_setting(db, "tax_rate_bp", str(tax_rate_bp))
    if invoice_net_days is not None:
        settings.set_setting(db, "invoice_net_days", str(invoice_net_days))
    if reminders is not None:
        settings.set_setting(db, "invoice_reminder_days", reminders)
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=None,
        action="settings.update",
        object_type="ServerSetting",
        before=before,
        after=current_settings(db),
    )
    db.commit()
