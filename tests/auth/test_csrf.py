import pytest
from sqlalchemy import select

from portal.models import User
from tests.builders import make_account, make_reseller, make_user


@pytest.fixture
def app_config():
    return {"WTF_CSRF_ENABLED": True}


def test_post_without_token_is_refused_and_changes_nothing(client, db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)), email="c@t.test")
    db.commit()
    response = client.post("/login", data={"email": "c@t.test", "password": "test-pass"})
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)
    db.rollback()
    assert db.scalar(select(User).where(User.id == user.id)).last_login_at is None


def test_post_with_token_from_the_form_works(client, db):
    make_user(db, account=make_account(db, reseller=make_reseller(db)), email="d@t.test")
    db.commit()
    html = client.get("/login").get_data(as_text=True)
    token = html.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = client.post(
        "/login", data={"email": "d@t.test", "password": "test-pass", "csrf_token": token}
    )
    assert response.status_code == 302


def test_htmx_header_token_is_accepted(client, db):
    make_user(db, account=make_account(db, reseller=make_reseller(db)), email="e@t.test")
    db.commit()
    html = client.get("/login").get_data(as_text=True)
    token = html.split('"X-CSRFToken": "')[1].split('"')[0]
    response = client.post(
        "/login",
        data={"email": "e@t.test", "password": "test-pass"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 302
