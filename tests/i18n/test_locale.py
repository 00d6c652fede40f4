"""Which language a request is served in: the profile's, else the browser's, else English."""

from __future__ import annotations

import pytest
from flask import render_template_string
from flask_babel import get_locale

from tests.builders import login, make_account, make_reseller, make_user


@pytest.mark.parametrize(
    ("header", "expected"),
    [("de-DE,de;q=0.9,en;q=0.5", "de"), ("es", "es"), ("fr-FR", "en"), (None, "en")],
)
def test_anonymous_requests_follow_accept_language(app, header, expected):
    headers = {"Accept-Language": header} if header else {}
    with app.test_request_context("/login", headers=headers):
        assert str(get_locale()) == expected


def test_the_profile_language_wins_over_the_browser(app, client, db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)), email="de@t.test")
    user.language = "es"
    db.commit()
    assert login(client, "de@t.test").status_code == 302
    with client:  # keeps the last request's context open to ask it
        client.get("/profile", headers={"Accept-Language": "de"})
        assert str(get_locale()) == "es"
        assert render_template_string("{{ _('Balance') }}") == "Saldo"  # `_` is in Jinja
