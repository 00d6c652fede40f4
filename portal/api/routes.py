"""/api/v1: JSON for the switch. Bearer token per reseller (or operator), no CSRF, never a 500."""

from __future__ import annotations

from functools import wraps

from flask import current_app, g, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from portal import api_tokens, card_codes, db, usage
from portal.api import bp
from portal.api.openapi import openapi_document
from portal.domain import NotFound


def _error(status: int, code: str, message: str, **extra):
    response = jsonify({"error": code, "message": message, **extra})
    response.status_code = status
    return response


def token_required(view):
    """Authenticate the bearer token; the view finds it in g.api_token."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        token = api_tokens.authenticate(db.session(), request.headers.get("Authorization"))
        if token is None:
            response = _error(401, "unauthorized", "Send a valid token: Authorization: Bearer ...")
            response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        g.api_token = token
        return view(*args, **kwargs)

    return wrapped


@bp.post("/accounts/<account_number>/charges")
@token_required
def post_charge(account_number: str):
    """Debit a call charge: 201, 402 (funds short), 404, 422; a replayed key answers the same."""
    payload = request.get_json(force=True, silent=True)
    session = db.session()
    try:
        answer = usage.record_charge(
            session,
            reseller_id=g.api_token.reseller_id,
            account_number=account_number,
            payload=payload,
        )
    except NotFound:
        return _error(404, "not_found", "No such account.")
    except usage.ChargeInputError as exc:
        return _error(422, "invalid_request", exc.message, errors=exc.errors)
    _touch_token(session)
    if answer.checks_queued:
        from portal.jobs import after_charge

        after_charge(current_app._get_current_object(), answer.account_id)
    return jsonify(answer.body), answer.status


@bp.post("/card-codes/<code>/charges")
@token_required
def post_card_code_charge(code: str):
    """Debit a call from a card code's credit: 201 (Credit Left), 402, 404, 422; replays."""
    payload = request.get_json(force=True, silent=True)
    session = db.session()
    try:
        answer = card_codes.charge_card_code(
            session, reseller_id=g.api_token.reseller_id, code=code, payload=payload
        )
    except NotFound:
        return _error(404, "not_found", "No such card code.")
    except usage.ChargeInputError as exc:
        return _error(422, "invalid_request", exc.message, errors=exc.errors)
    _touch_token(session)
    return jsonify(answer.body), answer.status


@bp.get("/accounts/<account_number>/balance")
@token_required
def get_balance(account_number: str):
    """Balance, credit limit and available funds of one account."""
    try:
        account = usage.find_account(
            db.session(), reseller_id=g.api_token.reseller_id, number=account_number
        )
    except NotFound:
        return _error(404, "not_found", "No such account.")
    body = usage.balance_view(account)
    _touch_token(db.session())
    return jsonify(body)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


def _touch_token(session) -> None:
    # Bookkeeping only: a failure here must never turn a done charge into an error.
    try:
        api_tokens.touch_token(session, g.api_token)
        session.commit()
    except OperationalError:
        session.rollback()


@bp.errorhandler(OperationalError)
def database_busy(exc):
    db.session().rollback()
    current_app.logger.warning("API database error: %s", exc.__class__.__name__)
    return _error(503, "unavailable", "The service is busy; retry with the same idempotency_key.")


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    return _error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or "")
