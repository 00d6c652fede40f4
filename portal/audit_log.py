"""Reading the audit log (newest first, keyset pages)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func
from sqlalchemy.orm import Session

from portal.models import AuditLog, User

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditPage:
    rows: list[tuple[AuditLog, str | None]]  # (row, actor email)
    next_before_id: int | None


def audit_page(
    db: Session, *, scoped: Select, action: str = "", before_id: int | None = None
) -> AuditPage:
    """Audit rows of `scoped` (security.tenant_select(AuditLog)), optionally by action prefix."""
    stmt = scoped.add_columns(User.email).outerjoin(User, User.id == AuditLog.actor_user_id)
    action = (action or "").strip().lower()[:60]
    if action:
        escaped = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(func.lower(AuditLog.action).like(f"{escaped}%", escape="\\"))
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    rows = db.execute(stmt.order_by(AuditLog.id.desc()).limit(PAGE_SIZE + 1)).all()
    page = [(row[0], row[1]) for row in rows[:PAGE_SIZE]]
    more = len(rows) > PAGE_SIZE
    return AuditPage(page, page[-1][0].id if more and page else None)
