"""Payments tests run against the session's real localstripe (nothing mocks `stripe`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from portal import db as portal_db
from portal.models import Account, PaymentCard
from portal.payments import gateway, service
from tests.builders import login, make_customer

WEBHOOK_SECRET = "whsec_test_secret"  # noqa: S105 - tests/conftest.py TEST_CONFIG
HTMX = {"HX-Request": "true"}


@pytest.fixture
def app_config(stripe_config):
    return stripe_config


@pytest.fixture
def customer(db):
    user = make_customer(db)
    db.commit()
    return user


@pytest.fixture
def signed_in(client, customer):
    login(client, customer.email)
    return customer


def add_test_card(app, account_id: int, number: str = "4242424242424242") -> int:
    """A card created in localstripe from a test number and linked to the account."""
    with app.app_context():
        session = portal_db.session()
        account = session.get(Account, account_id)
        customer_id = gateway.ensure_customer(session, account)
        info = gateway.create_test_card(customer_id, number)
        return service.link_card(session, account=account, info=info).id


def card_roles(db, account_id: int) -> dict[str, str]:
    db.rollback()
    cards = db.query(PaymentCard).filter_by(account_id=account_id).all()
    return {card.last4: card.role.value for card in cards}


def sign(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's scheme: t=<ts>,v1=<HMAC-SHA256 of "ts.body">."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def event_body(event_type: str, obj: dict, event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()


def post_event(client, event_type: str, obj: dict, *, event_id: str | None = None, **sign_args):
    body = event_body(event_type, obj, event_id)
    return client.post(
        "/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": sign(body, **sign_args), "Content-Type": "application/json"},
    )
