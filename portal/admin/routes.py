from flask import render_template
from sqlalchemy import func

from portal import db
from portal.admin import bp
from portal.ledger import available_funds, effective_credit_limit
from portal.models import Account, CardCode, TopupCard
from portal.security import get_scoped_or_404, tenant_select


@bp.get("/")
def index():
    """Overview: how many customers, cards and card codes this admin looks after."""
    session = db.session()
    counts = {
        "Customers": session.scalar(tenant_select(Account, func.count(Account.id))),
        "Top-up cards": session.scalar(tenant_select(TopupCard, func.count(TopupCard.id))),
        "Card codes": session.scalar(tenant_select(CardCode, func.count(CardCode.id))),
    }
    return render_template("admin/index.html", counts=counts)


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
