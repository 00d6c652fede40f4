"""POST /webhooks/stripe: verified by signature, stored once, then dispatched."""

from __future__ import annotations

import logging

from flask import current_app, jsonify, request

from portal import db
from portal.payments import webhooks
from portal.payments.gateway import InvalidSignature, construct_event
from portal.webhooks import bp

log = logging.getLogger(__name__)


@bp.post("/stripe")
def stripe_webhook():
    """Accept a Stripe event; a bad signature changes nothing and answers 400."""
    payload = request.get_data(cache=False)
    try:
        event = construct_event(
            payload,
            request.headers.get("Stripe-Signature"),
            current_app.config["STRIPE_WEBHOOK_SECRET"],
        )
    except InvalidSignature as exc:
        log.warning("Stripe webhook refused: %s", exc.message)
        return jsonify(error=exc.message), 400
    outcome = webhooks.receive_event(db.session(), event=event, payload=payload)
    return jsonify(received=True, outcome=outcome), 200
