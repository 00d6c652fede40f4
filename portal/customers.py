"""Customer accounts and their users: search, create, edit."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from portal import audit, ledger
from portal.auth.service import hash_password
from portal.domain import DomainError
from portal.i18n import _
from portal.models import (
    Account,
    AccountStatus,
    BillingModel,
    CreditChangeKind,
    CreditLimitChange,
    CustomerClass,
    Plan,
    Reseller,
    Role,
    Subscription,
    User,
    utcnow,
)
from portal.money import format_money, supported_currencies

PAGE_SIZE = 50
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,32}$")


class CustomerError(DomainError):
    """A refused change to a customer account or user."""


@dataclass(frozen=True)
class CustomerRow:
    account: Account
    plan_name: str
    available_minor: int


def search_customers(
    db: Session,
    *,
    scoped: Select,
    text: str = "",
    reseller_id: int | None = None,
    page: int = 1,
) -> tuple[list[CustomerRow], bool]:
    """Customers matching name, account number or email; returns the rows and whether more exist.

    `scoped` is the tenant-scoped SELECT of Account (security.tenant_select).
    """
    stmt = (
        scoped.add_columns(Plan.name)
        .outerjoin(Subscription, Subscription.account_id == Account.id)
        .outerjoin(Plan, Plan.id == Subscription.plan_id)
    )
    text = (text or "").strip()[:100]
    if text:
        like = f"%{text.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(Account.name).like(like),
                func.lower(Account.number).like(like),
                func.lower(Account.email).like(like),
            )
        )
    if reseller_id is not None:
        stmt = stmt.where(Account.reseller_id == reseller_id)
    page = max(1, min(page, 10_000))
    rows = db.execute(
        stmt.order_by(Account.name, Account.id).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
    ).all()
    result = [CustomerRow(row[0], row[1] or "", ledger.available_funds(row[0])) for row in rows]
    return result[:PAGE_SIZE], len(result) > PAGE_SIZE


def _clean_email(email: str, *, required: bool) -> str:
    email = (email or "").strip().lower()
    if not email and not required:
        return ""
    if len(email) > 254 or not _EMAIL.match(email):
        raise CustomerError(_("Enter an email address such as name@example.com."), field="email")
    return email


def _check_class(db: Session, reseller_id: int, class_id: int | None) -> int | None:
    if class_id is None:
        return None
    klass = db.get(CustomerClass, class_id)
    if klass is None or klass.reseller_id != reseller_id:
        raise CustomerError(
            _("Choose a customer class of this reseller."), field="customer_class_id"
        )
    return klass.id


def _snapshot(account: Account) -> dict:
    return {
        "name": account.name,
        "email": account.email,
        "status": account.status.value,
        "customer_class_id": account.customer_class_id,
    }


def create_customer(
    db: Session,
    *,
    reseller: Reseller,
    actor: User,
    number: str,
    name: str,
    email: str,
    currency: str,
    billing_model: BillingModel,
    customer_class_id: int | None = None,
    credit_limit_minor: int = 0,
) -> Account:
    """Create a customer account of `reseller` (the permanent limit only for postpaid)."""
    number, name = (number or "").strip(), (name or "").strip()
    if not _NUMBER.match(number):
        raise CustomerError(_("Use 1-32 letters, digits or dashes."), field="number")
    if db.scalar(select(Account.id).where(Account.number == number)):
        raise CustomerError(
            _("Account number %(number)s is already taken.", number=number), field="number"
        )
    if not name or len(name) > 200:
        raise CustomerError(_("Enter a name (at most 200 characters)."), field="name")
    if currency not in supported_currencies():
        raise CustomerError(_("Choose a supported currency."), field="currency")
    billing_model = BillingModel(billing_model)
    if credit_limit_minor < 0 or (credit_limit_minor and billing_model != BillingModel.POSTPAID):
        raise CustomerError(
            _("A Permanent Credit Limit is only for postpaid customers."), field="credit_limit"
        )
    account = Account(
        reseller_id=reseller.id,
        customer_class_id=_check_class(db, reseller.id, customer_class_id),
        number=number,
        name=name,
        email=_clean_email(email, required=False),
        currency=currency,
        billing_model=billing_model,
        credit_limit_minor=credit_limit_minor,
    )
    db.add(account)
    db.flush()
    if billing_model == BillingModel.POSTPAID:
        db.add(
            CreditLimitChange(
                account_id=account.id,
                kind=CreditChangeKind.PERMANENT,
                old_value="",
                new_value=format_money(credit_limit_minor, currency),
                actor_user_id=actor.id,
                created_at=utcnow(),
            )
        )
    _audit(db, actor, account, "customer.create", None, _snapshot(account))
    db.commit()
    return account


def update_customer(
    db: Session,
    *,
    account: Account,
    actor: User,
    name: str,
    email: str,
    status: AccountStatus,
    customer_class_id: int | None,
) -> Account:
    """Edit a customer's name, email, status and customer class."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise CustomerError(_("Enter a name (at most 200 characters)."), field="name")
    before = _snapshot(account)
    account.name = name
    account.email = _clean_email(email, required=False)
    account.status = AccountStatus(status)
    account.customer_class_id = _check_class(db, account.reseller_id, customer_class_id)
    _audit(db, actor, account, "customer.update", before, _snapshot(account))
    db.commit()
    return account


def _audit(db, actor, obj, action, before, after) -> None:
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=obj.reseller_id,
        action=action,
        object_type="account" if isinstance(obj, Account) else "user",
        object_id=obj.id,
        before=before,
        after=after,
    )


# --- Users of a customer account ----------------------------------------------------------


def check_password_rules(password: str) -> None:
    """Refuse passwords that are too short or too long."""
    if len(password or "") < MIN_PASSWORD:
        raise CustomerError(
            _("Use a password of at least %(min_password)s characters.", min_password=MIN_PASSWORD),
            field="password",
        )
    if len(password) > 200:
        raise CustomerError(_("Use a password of at most 200 characters."), field="password")


def check_new_user_email(db: Session, email: str) -> str:
    """A valid email that no user has yet (case-insensitive)."""
    email = _clean_email(email, required=True)
    if db.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise CustomerError(_("A user with this email already exists."), field="email")
    return email


def _user_snapshot(user: User) -> dict:
    return {
        "email": user.email,
        "name": user.name,
        "can_redeem_vouchers": user.can_redeem_vouchers,
        "active": user.active,
    }


def create_customer_user(
    db: Session,
    *,
    account: Account,
    actor: User,
    email: str,
    name: str,
    password: str,
    can_redeem_vouchers: bool = True,
) -> User:
    """Add a user who signs in to this customer account."""
    email = check_new_user_email(db, email)
    check_password_rules(password)
    user = User(
        email=email,
        name=(name or "").strip()[:200],
        password_hash=hash_password(password),
        role=Role.CUSTOMER,
        reseller_id=account.reseller_id,
        account_id=account.id,
        can_redeem_vouchers=bool(can_redeem_vouchers),
    )
    db.add(user)
    db.flush()
    _audit(db, actor, user, "customer_user.create", None, _user_snapshot(user))
    db.commit()
    return user


def update_customer_user(
    db: Session,
    *,
    user: User,
    actor: User,
    name: str,
    can_redeem_vouchers: bool,
    active: bool,
    password: str = "",
) -> User:
    """Edit a customer user; a new password (if given) also signs out their sessions."""
    if user.role != Role.CUSTOMER:
        raise CustomerError(_("Only customer users are edited here."))
    before = _user_snapshot(user)
    user.name = (name or "").strip()[:200]
    user.can_redeem_vouchers = bool(can_redeem_vouchers)
    user.active = bool(active)
    if password:
        check_password_rules(password)
        user.password_hash = hash_password(password)
    if password or not user.active:
        user.session_nonce = secrets.token_hex(8)
    _audit(db, actor, user, "customer_user.update", before, _user_snapshot(user))
    db.commit()
    return user


def account_users(db: Session, account: Account) -> list[User]:
    """The users who sign in to this account."""
    return list(db.scalars(select(User).where(User.account_id == account.id).order_by(User.email)))


def account_plan(db: Session, account: Account) -> Plan | None:
    """The plan the account subscribes to, if any."""
    return db.scalar(
        select(Plan)
        .join(Subscription, Subscription.plan_id == Plan.id)
        .where(Subscription.account_id == account.id)
    )
