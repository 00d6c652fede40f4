"""The lean signed-in reference page, served by the same gunicorn process as the portal.

`gunicorn -c portal/gunicorn_conf.py bench.lean_page:app` serves the portal unchanged and,
under /lean, a plain Flask app doing what any signed-in page must: read the signed session
cookie, load the user (one statement), run one query (the account's newest ledger entries)
and render a small template with the money formatted. No login framework, no CSRF, no
navigation: the floor a signed-in page of this stack can reach on this machine.
"""

from __future__ import annotations

import os

from flask import Flask, abort, render_template, request, session
from jinja2 import DictLoader
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from portal.models import LedgerEntry, User
from portal.money import format_money

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Balance</title>
<link rel="stylesheet" href="/static/css/portal.css"></head>
<body><main><h1>Balance of {{ user.email }}</h1>
<table><thead><tr><th>Date</th><th>Description</th><th>Amount</th><th>Balance after</th></tr>
</thead><tbody>{% for e in entries %}<tr><td>{{ e.created_at.strftime("%d %b %Y %H:%M") }}</td>
<td>{{ e.description }}</td><td>{{ e.amount_minor|money(e.currency) }}</td>
<td>{{ e.balance_after_minor|money(e.currency) }}</td></tr>{% endfor %}</tbody></table>
</main></body></html>"""


def create_lean_app(database_url: str, secret_key: str) -> Flask:
    lean = Flask(__name__)
    lean.secret_key = secret_key
    lean.jinja_loader = DictLoader({"balance.html": TEMPLATE})  # compiled once, like ours
    lean.jinja_env.filters["money"] = format_money
    engine = create_engine(database_url, pool_size=5, max_overflow=10)

    @lean.get("/sign-in")
    def sign_in():  # bench only: this app is never part of the portal
        with Session(engine) as db:
            user_id = db.scalar(select(User.id).where(User.email == request.args["email"]))
        session["uid"] = user_id
        return "signed in"

    @lean.get("/balance")
    def balance():
        user_id = session.get("uid")
        if user_id is None:
            abort(401)
        with Session(engine) as db:
            user = db.get(User, user_id)
            if user is None or user.account_id is None:
                abort(401)
            entries = db.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.account_id == user.account_id)
                .order_by(LedgerEntry.id.desc())
                .limit(10)
            ).all()
            return render_template("balance.html", user=user, entries=entries)

    return lean


def _combined():
    from app import app as portal_app

    lean = create_lean_app(os.environ["DATABASE_URL"], os.environ["SECRET_KEY"] + "-lean")
    portal_app.wsgi_app = DispatcherMiddleware(portal_app.wsgi_app, {"/lean": lean})
    return portal_app


def __getattr__(name: str):
    # `bench.lean_page:app` for gunicorn; importing the module alone builds nothing.
    if name == "app":
        globals()["app"] = _combined()
        return globals()["app"]
    raise AttributeError(name)
