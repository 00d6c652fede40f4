"""Sign-in, reset, two-factor and session events are in the audit log; no secret (password,
reset link, TOTP key or code, recovery code, session key) is in it or in any log."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select

from portal.models import AuditLog, OutboxEmail, Role
from tests.auth.test_two_factor import code, enroll
from tests.builders import PASSWORD, login, make_reseller, make_user

NEW = "fresh-password-123"  # noqa: S105


@pytest.fixture
def app_config():
    return {"TWO_FACTOR_REQUIRED_FOR_ADMINS": True}


def test_account_events_are_audited_without_secrets(app, client, db, caplog):
    caplog.set_level(logging.DEBUG)
    make_user(db, role=Role.RESELLER_ADMIN, reseller=make_reseller(db), email="adm@t.test")
    db.commit()
    login(client, "adm@t.test", "wrong-password-1")
    login(client, "adm@t.test")
    secret, codes = enroll(client, "/login/two-factor/setup")
    with client.session_transaction() as session:
        session_key = session["sid"]
    client.post("/logout")
    login(client, "adm@t.test")
    client.post("/login/two-factor", data={"code": "000000"})
    totp = code(secret, 1)
    client.post("/login/two-factor", data={"code": totp})
    client.post("/profile/sessions/sign-out-everywhere")
    client.post("/forgot-password", data={"email": "adm@t.test"})
    db.rollback()
    body = db.scalar(select(OutboxEmail.body).where(OutboxEmail.subject == "Reset your password"))
    link = re.search(r"http://\S+(/reset-password/\S+)", body).group(1)
    client.post(link, data={"password": NEW, "confirm": NEW})

    db.rollback()
    rows = db.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert [row.action for row in rows] == [
        "auth.sign_in_failed",
        "auth.two_factor_enabled",
        "auth.sign_in",
        "auth.sign_out",
        "auth.two_factor_failed",
        "auth.sign_in",
        "auth.sign_out_everywhere",
        "auth.password_reset_requested",
        "auth.password_reset",
    ]
    stored = " ".join(f"{r.action} {r.before} {r.after} {r.object_id}" for r in rows)
    secrets_ = [PASSWORD, "wrong-password-1", NEW, secret, totp, session_key, link, *codes]
    for value in secrets_:
        assert value not in stored
        assert value not in caplog.text
