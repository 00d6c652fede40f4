"""POST /webhooks/stripe: verified by signature, stored once, then dispatched."""

from __future__ import annotations

import logging

from flask import current_app, jsonify, request

from portal import db
from portal.payments import webhooks
from portal.payments.gateway import (
    InvalidSignature,
    MalformedEvent,
    parse_event,
    verify_signature,
)
from portal.webhooks import bp

log = logging.getLogger(__name__)


@bp.post("/stripe")
def stripe_webhook():
    """Accept a Stripe event; a bad signature changes nothing and answers 400.

    A signed event we cannot use is kept as failed with the reason and answered 400;
    a type we do not act on is kept as ignored and answered 200.
    """
    payload = request.get_data(cache=False)
    try:
        verify_signature(
            payload,
            request.headers.get("Stripe-Signature"),
            current_app.config["STRIPE_WEBHOOK_SECRET"],
        )
    except InvalidSignature as exc:
        log.warning("Stripe webhook refused: %s", exc.message)
        return jsonify(error=exc.message), 400
    session = db.session()
    try:
        event = parse_event(payload)
    except MalformedEvent as exc:
        log.warning("Signed Stripe event refused: %s", exc.message)
        answer = webhooks.receive_malformed(session, error=exc, payload=payload)
    else:
        answer = webhooks.receive_event(session, event=event, payload=payload)
    body = {"received": True, "outcome": answer.outcome}
    if answer.reason:
        body["error"] = answer.reason
    return jsonify(body), answer.status_code
