"""Plain builder functions for tests: keyword arguments, sensible defaults."""

from __future__ import annotations

import itertools

from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from portal.models import (
    Account,
    BillingModel,
    CustomerClass,
    Reseller,
    Role,
    TransferSetting,
    User,
)

PASSWORD = "test-pass"  # noqa: S105
_counter = itertools.count(1)
_FAST_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def make_reseller(db: Session, *, name: str | None = None, currency: str = "GBP") -> Reseller:
    reseller = Reseller(name=name or f"Reseller {next(_counter)}", currency=currency)
    db.add(reseller)
    db.flush()
    return reseller


def make_customer_class(db: Session, *, reseller: Reseller, **fields) -> CustomerClass:
    klass = CustomerClass(
        reseller_id=reseller.id, name=fields.pop("name", f"Class {next(_counter)}"), **fields
    )
    db.add(klass)
    db.flush()
    return klass


def make_account(
    db: Session,
    *,
    reseller: Reseller,
    model: BillingModel = BillingModel.PREPAID,
    currency: str = "GBP",
    credit_limit_minor: int = 0,
    transfers: TransferSetting = TransferSetting.CLASS,
    **fields,
) -> Account:
    n = next(_counter)
    account = Account(
        reseller_id=reseller.id,
        number=fields.pop("number", f"9{n:06d}"),
        name=fields.pop("name", f"Customer {n}"),
        email=fields.pop("email", f"customer{n}@example.test"),
        currency=currency,
        billing_model=model,
        credit_limit_minor=credit_limit_minor,
        transfers=transfers,
        **fields,
    )
    db.add(account)
    db.flush()
    return account


def make_user(
    db: Session,
    *,
    role: Role = Role.CUSTOMER,
    reseller: Reseller | None = None,
    account: Account | None = None,
    email: str | None = None,
    **fields,
) -> User:
    user = User(
        email=email or f"user{next(_counter)}@example.test",
        password_hash=_FAST_HASH,
        role=role,
        reseller_id=reseller.id if reseller else (account.reseller_id if account else None),
        account_id=account.id if account else None,
        session_nonce="n0",
        **fields,
    )
    db.add(user)
    db.flush()
    return user


def make_customer(db: Session, *, reseller: Reseller | None = None, **account_fields) -> User:
    """A customer user with an account of their own."""
    reseller = reseller or make_reseller(db)
    account = make_account(db, reseller=reseller, **account_fields)
    return make_user(db, account=account)


def login(client, email: str, password: str = PASSWORD):
    return client.post("/login", data={"email": email, "password": password})
