"""The audit log: who changed what, when, with before/after."""

from __future__ import annotations

import json
from typing import Any

from flask import has_request_context
from sqlalchemy.orm import Session

from portal.models import AuditLog


def _client_ip() -> str:
    if not has_request_context():
        return ""
    from portal.extensions import client_address

    return client_address()


def record(
    db: Session,
    *,
    actor_user_id: int | None,
    reseller_id: int | None,
    action: str,
    object_type: str,
    object_id: Any = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditLog:
    """Add an audit row in the caller's transaction (the caller commits)."""
    row = AuditLog(
        actor_user_id=actor_user_id,
        reseller_id=reseller_id,
        action=action[:60],
        object_type=object_type[:60],
        object_id=str(object_id)[:60],
        before=json.dumps(before, default=str, sort_keys=True) if before is not None else None,
        after=json.dumps(after, default=str, sort_keys=True) if after is not None else None,
        ip=_client_ip(),
    )
    db.add(row)
    return row
