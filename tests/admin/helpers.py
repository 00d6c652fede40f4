"""Arrangements shared by the admin tests (a reseller, its admin, a postpaid customer)."""

from __future__ import annotations

from dataclasses import dataclass

from portal.models import Account, BillingModel, CustomerClass, Reseller, Role, User
from tests.builders import make_account, make_customer_class, make_reseller, make_user


@dataclass
class Tenant:
    reseller: Reseller
    admin: User
    klass: CustomerClass
    postpaid: Account
    prepaid: Account


def make_tenant(db, *, name: str, admin_email: str) -> Tenant:
    reseller = make_reseller(db, name=name)
    klass = make_customer_class(
        db,
        reseller=reseller,
        transfers_allowed=True,
        max_increase_minor=50000,
        max_increase_percent=50,
        max_increase_days=30,
        default_warning_thresholds="10, 5",
    )
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=reseller, email=admin_email)
    postpaid = make_account(
        db,
        reseller=reseller,
        model=BillingModel.POSTPAID,
        credit_limit_minor=20000,
        customer_class_id=klass.id,
    )
    prepaid = make_account(db, reseller=reseller, customer_class_id=klass.id)
    return Tenant(reseller, admin, klass, postpaid, prepaid)


def reload(db) -> None:
    """Forget what the test session has loaded, so the next reads see what requests did."""
    # Detach first: the objects keep their (old) values for ids, and new reads load fresh rows.
    db.expunge_all()
    db.rollback()
