"""The profile: details, password (current required), email (confirmed through the new
address); the admin Users list (last sign-in, deactivate, tenant-scoped)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.models import AuditLog, OutboxEmail, Role, User
from tests.builders import PASSWORD, login, make_account, make_reseller, make_user

NEW = "an-entirely-new-pass"  # noqa: S105


@pytest.fixture
def alice(db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)), email="alice@t.test")
    db.commit()
    return user


@pytest.fixture
def signed_in(client, alice):
    assert login(client, "alice@t.test").status_code == 302
    return client


def test_the_profile_page_has_labelled_fields_and_buttons(signed_in):
    html = signed_in.get("/profile").get_data(as_text=True)
    for label in ("Name", "Preferred language", "Current password", "New password", "New email"):
        assert f">{label}" in html
    for button in ("Save details", "Change password", "Send confirmation link"):
        assert f">{button}</button>" in html


def test_name_and_language_are_saved(signed_in, db, alice):
    response = signed_in.post("/profile", data={"name": "Alice A.", "language": "de"})
    assert response.status_code == 303
    db.rollback()
    user = db.get(User, alice.id)
    assert (user.name, user.language) == ("Alice A.", "de")


def test_an_unknown_language_is_refused(signed_in, db, alice):
    response = signed_in.post("/profile", data={"name": "X", "language": "xx"})
    assert response.status_code == 422
    db.rollback()
    assert db.get(User, alice.id).language == "en"


def change_password(client, current, new, confirm=None):
    return client.post(
        "/profile/password",
        data={"pw-current": current, "pw-password": new, "pw-confirm": confirm or new},
    )


def test_changing_the_password_needs_the_current_one(signed_in, client):
    response = change_password(signed_in, "not-my-password", NEW)
    assert response.status_code == 422
    assert "Your current password is not right." in response.get_data(as_text=True)
    signed_in.post("/logout")
    assert login(client, "alice@t.test").status_code == 302  # unchanged


def test_changing_the_password_signs_out_the_other_sessions_only(app, signed_in, db):
    other = app.test_client()
    login(other, "alice@t.test")
    assert change_password(signed_in, PASSWORD, NEW).status_code == 303
    assert signed_in.get("/billing/balance").status_code == 200
    assert other.get("/billing/balance").status_code == 302
    assert login(other, "alice@t.test").status_code == 200
    assert login(other, "alice@t.test", NEW).status_code == 302
    db.rollback()
    notice = db.scalar(select(OutboxEmail).where(OutboxEmail.to_address == "alice@t.test"))
    assert notice.subject == "Security notice: Your password was changed"


def test_a_too_short_new_password_is_refused(signed_in):
    response = change_password(signed_in, PASSWORD, "short")
    assert response.status_code == 422
    assert "at least 10 characters" in response.get_data(as_text=True)


def change_email(client, email, current=PASSWORD):
    return client.post("/profile/email", data={"em-email": email, "em-current": current})


def test_a_new_email_is_confirmed_through_the_new_address(signed_in, db, alice):
    assert change_email(signed_in, "Alice.New@T.test").status_code == 303
    db.rollback()
    assert db.get(User, alice.id).email == "alice@t.test"  # nothing changed yet
    mail = db.scalar(select(OutboxEmail).where(OutboxEmail.to_address == "alice.new@t.test"))
    link = re.search(r"http://\S+(/profile/email/confirm/\S+)", mail.body).group(1)
    page = signed_in.get(link)
    assert ">Confirm new email</button>" in page.get_data(as_text=True)
    db.rollback()
    assert db.get(User, alice.id).email == "alice@t.test"  # a GET (mail scanner) changes nothing
    assert signed_in.post(link).status_code == 303
    db.rollback()
    assert db.get(User, alice.id).email == "alice.new@t.test"
    assert signed_in.post(link).status_code == 400  # used
    old = db.scalar(select(OutboxEmail).where(OutboxEmail.to_address == "alice@t.test"))
    assert "changed to alice.new@t.test" in old.subject
    actions = db.scalars(select(AuditLog.action)).all()
    assert "profile.email_change_requested" in actions and "profile.email_changed" in actions


@pytest.mark.parametrize(
    ("email", "current", "message"),
    [
        ("new@t.test", "wrong", "Your current password is not right."),
        ("not-an-email", PASSWORD, "Enter an email address"),
        ("taken@t.test", PASSWORD, "already"),
    ],
)
def test_bad_email_changes_are_refused(signed_in, db, email, current, message):
    make_user(db, email="taken@t.test")
    db.commit()
    response = change_email(signed_in, email, current)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.rollback()
    assert db.scalars(select(OutboxEmail)).all() == []


def test_a_forged_confirmation_link_changes_nothing(client):
    assert client.post("/profile/email/confirm/forged").status_code == 400


# --- Admin: Users -----------------------------------------------------------------------------


@pytest.fixture
def tenants(db):
    acme, beta = make_reseller(db), make_reseller(db)
    world = {
        "admin": make_user(db, role=Role.RESELLER_ADMIN, reseller=acme, email="admin@acme.t"),
        "own": make_user(
            db, account=make_account(db, reseller=acme), email="own@acme.t", name="Own Person"
        ),
        "foreign": make_user(db, account=make_account(db, reseller=beta), email="x@beta.t"),
    }
    db.commit()
    return world


def test_admin_sees_the_users_of_their_reseller_with_last_sign_in(app, client, db, tenants):
    login(app.test_client(), "own@acme.t")
    login(client, "admin@acme.t")
    html = client.get("/admin/users").get_data(as_text=True)
    assert "own@acme.t" in html and "admin@acme.t" in html
    assert "x@beta.t" not in html
    db.rollback()
    last = db.get(User, tenants["own"].id).last_login_at
    assert last.strftime("%d %b %Y %H:%M") in html
    found = client.get("/admin/users?q=own+per", headers={"HX-Request": "true"})
    fragment = found.get_data(as_text=True)
    assert fragment.startswith('<section id="users">') and "own@acme.t" in fragment
    assert "admin@acme.t" not in fragment


def test_deactivating_a_user_ends_their_sessions(app, client, db, tenants):
    victim = app.test_client()
    login(victim, "own@acme.t")
    login(client, "admin@acme.t")
    response = client.post(f"/admin/users/{tenants['own'].id}/active", data={"active": "0"})
    assert response.status_code == 303
    assert victim.get("/billing/balance").status_code == 302
    assert login(victim, "own@acme.t").status_code == 200  # cannot sign in
    client.post(f"/admin/users/{tenants['own'].id}/active", data={"active": "1"})
    assert login(victim, "own@acme.t").status_code == 302
    db.rollback()
    actions = db.scalars(select(AuditLog.action).where(AuditLog.action.like("user.%"))).all()
    assert actions == ["user.deactivate", "user.activate"]


def test_another_resellers_user_answers_404(client, db, tenants):
    login(client, "admin@acme.t")
    foreign = client.post(f"/admin/users/{tenants['foreign'].id}/active", data={"active": "0"})
    missing = client.post("/admin/users/999999/active", data={"active": "0"})
    assert foreign.status_code == missing.status_code == 404
    db.rollback()
    assert db.get(User, tenants["foreign"].id).active


def test_an_admin_cannot_deactivate_themselves_and_bad_values_are_refused(client, db, tenants):
    login(client, "admin@acme.t")
    me = tenants["admin"].id
    response = client.post(f"/admin/users/{me}/active", data={"active": "0"}, follow_redirects=True)
    assert "You cannot deactivate yourself." in response.get_data(as_text=True)
    assert client.post(f"/admin/users/{me}/active", data={"active": "maybe"}).status_code == 400
    db.rollback()
    assert db.get(User, me).active
