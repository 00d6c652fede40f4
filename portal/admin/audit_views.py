"""Admin views: the audit log (who, what, when, before/after), scoped to the admin's tenant."""

from __future__ import annotations

from flask import request

from portal import db
from portal.admin import bp
from portal.audit_log import audit_page
from portal.models import AuditLog
from portal.security import tenant_select
from portal.web import render


@bp.get("/audit-log")
def audit_log():
    """Audit rows, newest first; filter by action; HTMX swaps only the table."""
    action = request.args.get("action", "")[:60]
    raw = request.args.get("before", "")
    before_id = int(raw) if raw.isdigit() and len(raw) < 19 else None
    page = audit_page(
        db.session(), scoped=tenant_select(AuditLog), action=action, before_id=before_id
    )
    return render("admin/audit_log.html", "admin/_audit_log_table.html", page=page, action=action)
