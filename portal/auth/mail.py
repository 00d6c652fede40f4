"""Account emails (through the outbox): reset links, email confirmation, security notices.

Links are built from PUBLIC_URL, never from the request's Host header.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app, url_for
from sqlalchemy.orm import Session

from portal.models import User
from portal.notifications import queue_email


def link(endpoint: str, **values) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + url_for(endpoint, **values)


def _greeting(user: User) -> str:
    return f"Hello {user.name or user.email},\n\n"


def repeated_failures(db: Session, user: User, *, count: int, now: datetime) -> None:
    queue_email(
        db,
        to_address=user.email,
        reseller_id=user.reseller_id,
        subject="Repeated failed sign-ins to your account",
        body=_greeting(user)
        + f"There were {count} failed attempts to sign in to your account in the last hour.\n"
        "If this was not you, nothing is needed: sign-ins are being slowed down. Consider a "
        f"stronger password and two-factor sign-in: {link('auth.two_factor_settings')}\n",
        dedupe_key=f"sign-in-failures:{user.id}:{now:%Y%m%d%H}",
    )


def password_reset(db: Session, user: User, token: str, *, dedupe_key: str) -> None:
    queue_email(
        db,
        to_address=user.email,
        reseller_id=user.reseller_id,
        subject="Reset your password",
        body=_greeting(user)
        + "Someone (hopefully you) asked to reset the password of your account.\n"
        f"Choose a new password here within 30 minutes:\n\n{link('auth.reset', token=token)}\n\n"
        "The link works once. If you did not ask for this, ignore this email.\n",
        dedupe_key=dedupe_key,
    )


def confirm_email(db: Session, user: User, new_email: str, token: str) -> None:
    queue_email(
        db,
        to_address=new_email,
        reseller_id=user.reseller_id,
        subject="Confirm your new email address",
        body=_greeting(user) + "Confirm that this is the new email address of your account:\n\n"
        f"{link('auth.confirm_email', token=token)}\n\nThe link is valid for 24 hours.\n",
    )


def security_notice(db: Session, user: User, to_address: str, what: str) -> None:
    queue_email(
        db,
        to_address=to_address,
        reseller_id=user.reseller_id,
        subject=f"Security notice: {what}",
        body=_greeting(user)
        + f"{what} on your account. If this was not you, reset your password now: "
        f"{link('auth.forgot')}\n",
    )
