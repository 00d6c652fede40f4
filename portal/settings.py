"""Server settings (operator): default currency and the invoice tax rate."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import ServerSetting

DEFAULTS = {
    "default_currency": "GBP",
    "tax_rate_bp": "2000",
    "invoice_net_days": "14",
    "invoice_reminder_days": "1, 7, 14",
}


def get_setting(db: Session, key: str) -> str:
    value = db.scalar(select(ServerSetting.value).where(ServerSetting.key == key))
    return value if value is not None else DEFAULTS[key]


def set_setting(db: Session, key: str, value: str) -> None:
    row = db.get(ServerSetting, key)
    if row is None:
        db.add(ServerSetting(key=key, value=value))
    else:
        row.value = value


def default_currency(db: Session) -> str:
    return get_setting(db, "default_currency")
