"""The signed-in customer's account, loaded once per request."""

from __future__ import annotations

from flask import request
from flask_login import current_user
from sqlalchemy import select

from portal import db
from portal.models import Account


def current_account() -> Account:
    account = request.__dict__.get("account")
    if account is None:
        account = db.session().scalar(select(Account).where(Account.id == current_user.account_id))
        request.account = account
    return account
