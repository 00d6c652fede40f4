"""Admin views: customers (list, detail)."""

from flask import render_template

from portal import db
from portal.admin import bp
from portal.ledger import available_funds, effective_credit_limit
from portal.models import Account
from portal.security import get_scoped_or_404, tenant_select


@bp.get("/customers")
def customers():
    """Customer accounts of this admin's reseller (all resellers for the operator)."""
    rows = db.session().scalars(tenant_select(Account).order_by(Account.name).limit(200)).all()
    return render_template("admin/customers.html", customers=rows)


@bp.get("/customers/<int:customer_id>")
def customer(customer_id: int):
    account = get_scoped_or_404(Account, customer_id)
    return render_template(
        "admin/customer.html",
        account=account,
        available=available_funds(account),
        credit_limit=effective_credit_limit(account),
    )
