"""Admin views: the audit log (who, what, when, before -> after), scoped to the admin's tenant."""

from __future__ import annotations

from flask import Response, request, url_for
from flask_wtf import FlaskForm
from wtforms import DateField, StringField
from wtforms.validators import Length, Optional, ValidationError

from portal import db
from portal.admin import bp
from portal.audit_log import AuditFilters, audit_csv, audit_page
from portal.i18n import _, _l
from portal.models import AuditLog
from portal.security import tenant_select
from portal.web import render

FILTERS = ("who", "action", "date_from", "date_to")


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search: bookmarkable, changes nothing

    who = StringField(_l("Who (email, or “system”)"), validators=[Optional(), Length(max=254)])
    action = StringField(_l("What (action starts with)"), validators=[Optional(), Length(max=60)])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_("The end date is before the start date."))

    def filters(self) -> AuditFilters:
        if self.errors:
            return AuditFilters()
        return AuditFilters(
            who=self.who.data or "",
            action=self.action.data or "",
            date_from=self.date_from.data,
            date_to=self.date_to.data,
        )


def _form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    form.validate()
    return form


@bp.get("/audit-log")
def audit_log():
    """Audit rows, newest first; filter by who, what and when; HTMX swaps only the table."""
    form = _form()
    raw = request.args.get("before", "")
    before_id = int(raw) if raw.isdigit() and len(raw) < 19 else None
    page = audit_page(
        db.session(), scoped=tenant_select(AuditLog), filters=form.filters(), before_id=before_id
    )
    wanted = {} if form.errors else {k: v for k, v in request.args.items() if k in FILTERS and v}
    return render(
        "admin/audit_log.html",
        "admin/_audit_log_table.html",
        page=page,
        form=form,
        csv_url=url_for("admin.audit_log_csv", **wanted),
    )


@bp.get("/audit-log.csv")
def audit_log_csv():
    """Download CSV of the filtered audit log (one line per changed field)."""
    form = _form()
    if form.errors:
        errors = "; ".join(e for errs in form.errors.values() for e in errs)
        return Response(
            _("Correct the filters first: %(errors)s", errors=errors), 400, mimetype="text/plain"
        )
    text = audit_csv(db.session(), scoped=tenant_select(AuditLog), filters=form.filters())
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
    )
