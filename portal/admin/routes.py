from sqlalchemy import func

from portal import db, overview
from portal.admin import bp
from portal.charts import bar_chart
from portal.i18n import _
from portal.models import Account, CardCode, TopupCard
from portal.security import tenant_select
from portal.web import render


@bp.get("/")
def index():
    """Overview: counts, top-ups and redemptions per day, customers near their credit limits."""
    session = db.session()
    counts = {
        _("Customers"): session.scalar(tenant_select(Account, func.count(Account.id))),
        _("Top-up cards"): session.scalar(tenant_select(TopupCard, func.count(TopupCard.id))),
        _("Card codes"): session.scalar(tenant_select(CardCode, func.count(CardCode.id))),
    }
    data = overview.admin_overview(
        session, accounts=tenant_select(Account, Account.id), counts=counts
    )
    return render(
        "admin/index.html",
        "admin/_overview.html",
        overview=data,
        topups_chart=bar_chart(data.topups),
        redemptions_chart=bar_chart(data.redemptions),
    )
