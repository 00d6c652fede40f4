from flask import render_template
from sqlalchemy import func

from portal import db
from portal.admin import bp
from portal.i18n import N_
from portal.models import Account, CardCode, TopupCard
from portal.security import tenant_select


@bp.get("/")
def index():
    """Overview: how many customers, cards and card codes this admin looks after."""
    session = db.session()
    counts = {
        N_("Customers"): session.scalar(tenant_select(Account, func.count(Account.id))),
        N_("Top-up cards"): session.scalar(tenant_select(TopupCard, func.count(TopupCard.id))),
        N_("Card codes"): session.scalar(tenant_select(CardCode, func.count(CardCode.id))),
    }
    return render_template("admin/index.html", counts=counts)
