"""What an admin may do to a user of their tenant (the caller loads it tenant-scoped)."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from portal import audit
from portal.auth import sessions
from portal.domain import PermissionDenied
from portal.i18n import _
from portal.models import User


def set_active(db: Session, *, actor: User, user: User, active: bool) -> None:
    """Deactivate (every session ends at once) or reactivate a user."""
    if user.id == actor.id:
        raise PermissionDenied(_("You cannot deactivate yourself."))
    if user.active == active:
        return
    before = {"active": user.active}
    user.active = active
    if not active:
        user.session_nonce = secrets.token_hex(8)
        sessions.revoke_all(db, user)
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=user.reseller_id,
        action="user.activate" if active else "user.deactivate",
        object_type="user",
        object_id=user.id,
        before=before,
        after={"active": active},
    )
    db.commit()
