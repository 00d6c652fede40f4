"""Admin view: the email outbox (what was sent, what waits, what failed)."""

from flask import abort, request

from portal import db, documents
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


@bp.get("/outbox/<int:email_id>")
def outbox_mail(email_id: int):
    """One mail as the customer gets it: the text part, the HTML part (sandboxed) and files."""
    mail = db.session().scalar(tenant_select(OutboxEmail).where(OutboxEmail.id == email_id))
    if mail is None:
        abort(404)
    return render(
        "admin/outbox_mail.html",
        "admin/outbox_mail.html",
        mail=mail,
        attachments=documents.attachment_names(db.session(), mail.attachments),
    )
