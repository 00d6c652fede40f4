"""Admin view: the email outbox (what was sent, what waits, what failed)."""

from flask import request

from portal import db
from portal.admin import bp
from portal.models import MailStatus, OutboxEmail
from portal.security import tenant_select
from portal.web import render

PAGE = 100


@bp.get("/outbox")
def outbox():
    """The latest mails of this admin's customers (all for the operator), filterable by status."""
    status = request.args.get("status", "")
    stmt = tenant_select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(PAGE)
    if status in {s.value for s in MailStatus}:
        stmt = stmt.where(OutboxEmail.status == MailStatus(status))
    else:
        status = ""
    mails = db.session().scalars(stmt).all()
    return render(
        "admin/outbox.html",
        "admin/outbox_table.html",
        mails=mails,
        current_status=status,
        statuses=list(MailStatus),
    )
