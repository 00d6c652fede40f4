"""The lean reference for the usage API: what a charge costs with nothing but the work itself.

A plain Flask app on the same gunicorn settings and the same SQLAlchemy engine options: each
request hashes the bearer token (SHA-256) and looks it up (no cache), then debits in one
funds-checked `UPDATE ... RETURNING`, inserts the immutable ledger entry (or, for a card
code, the charge row) and commits. No validation beyond the JSON shape, no idempotent
replay, no after-debit work: the floor our endpoints are measured against
(bench/usage_api.py). Run by gunicorn as `bench.lean_api:app` with DATABASE_URL set.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from decimal import Decimal

from flask import Flask, jsonify, request
from sqlalchemy import text

from portal.db import make_engine

app = Flask(__name__)
engine = make_engine(os.environ.get("DATABASE_URL", "sqlite://"))
SQLITE = engine.dialect.name == "sqlite"

TOKEN = text("SELECT reseller_id FROM api_tokens WHERE token_hash = :h AND revoked_at IS NULL")
DEBIT = text(
    "UPDATE accounts SET balance_minor = balance_minor - :amount "
    "WHERE number = :number AND reseller_id = :reseller AND status = 'active' "
    "AND balance_minor >= :amount RETURNING id, balance_minor, currency"
)
ENTRY = text(
    "INSERT INTO ledger_entries (account_id, kind, amount_minor, balance_after_minor, currency, "
    "description, reference, idempotency_key, created_at) VALUES (:account, 'usage', :minus, "
    ":balance, :currency, :description, '', :key, :at) RETURNING id"
)
CARD = text(
    "UPDATE card_codes SET credit_minor = CASE WHEN unlimited THEN credit_minor "
    "ELSE credit_minor - :amount END WHERE code = :code AND reseller_id = :reseller "
    "AND (unlimited OR credit_minor >= :amount) RETURNING id, credit_minor, currency"
)
CARD_CHARGE = text(
    "INSERT INTO card_code_charges (card_code_id, idempotency_key, request_fingerprint, "
    "amount_minor, description, status_code, credit_left_minor, response_json, created_at) "
    "VALUES (:card, :key, '', :amount, :description, 201, :left, '', :at) RETURNING id"
)


def _reseller(conn):
    scheme, _, plaintext = request.headers.get("Authorization", "").partition(" ")
    digest = hashlib.sha256(plaintext.strip().encode()).hexdigest()
    return conn.execute(TOKEN, {"h": digest}).scalar()


def _now():
    # The app stores naive UTC on SQLite and timestamptz-free UTC on PostgreSQL alike.
    return datetime.now(UTC).replace(tzinfo=None)


@app.post("/api/v1/accounts/<number>/charges")
def charge(number: str):
    body = request.get_json(force=True, silent=True) or {}
    amount = int(Decimal(body["amount"]) * 100)
    with engine.begin() as conn:
        reseller = _reseller(conn)
        if reseller is None:
            return jsonify(error="unauthorized"), 401
        row = conn.execute(
            DEBIT, {"amount": amount, "number": number, "reseller": reseller}
        ).first()
        if row is None:
            return jsonify(error="insufficient_funds"), 402
        entry_id = conn.execute(
            ENTRY,
            {
                "account": row.id,
                "minus": -amount,
                "balance": row.balance_minor,
                "currency": row.currency,
                "description": body["description"],
                "key": "lean:" + body["idempotency_key"],
                "at": _now(),
            },
        ).scalar()
    return jsonify(
        account=number, balance=str(Decimal(row.balance_minor) / 100), entry_id=entry_id
    ), 201


@app.post("/api/v1/card-codes/<code>/charges")
def card_charge(code: str):
    body = request.get_json(force=True, silent=True) or {}
    amount = int(Decimal(body["amount"]) * 100)
    with engine.begin() as conn:
        reseller = _reseller(conn)
        if reseller is None:
            return jsonify(error="unauthorized"), 401
        row = conn.execute(CARD, {"amount": amount, "code": code, "reseller": reseller}).first()
        if row is None:
            return jsonify(error="insufficient_credit"), 402
        charge_id = conn.execute(
            CARD_CHARGE,
            {
                "card": row.id,
                "key": "lean:" + body["idempotency_key"],
                "amount": amount,
                "description": body["description"],
                "left": row.credit_minor,
                "at": _now(),
            },
        ).scalar()
    return jsonify(
        code=code, credit_left=str(Decimal(row.credit_minor or 0) / 100), charge_id=charge_id
    ), 201


@app.get("/healthz")
def healthz():
    return "ok"
