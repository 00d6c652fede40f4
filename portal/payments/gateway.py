"""The Stripe gateway: the only module that imports `stripe`.

Everything leaving here is a plain dataclass or a domain error, so the rest of the
portal never sees a Stripe object. Production talks to Stripe; development, the demo
and the tests talk to localstripe through the same calls (STRIPE_API_BASE).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import stripe
from flask import current_app
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.i18n import _
from portal.models import Account

log = logging.getLogger(__name__)
WEBHOOK_TOLERANCE_SECONDS = 300


# --- What callers get back ----------------------------------------------------------


@dataclass(frozen=True)
class SetupIntentInfo:
    id: str
    client_secret: str


@dataclass(frozen=True)
class CardInfo:
    payment_method_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    # Stripe's fingerprint of the card number (localstripe sends one too: a hash of the number).
    fingerprint: str | None = None


@dataclass(frozen=True)
class ChargeResult:
    payment_intent_id: str
    status: str  # Stripe's PaymentIntent status, e.g. "succeeded", "processing"
    charge_id: str | None
    failure_message: str = ""


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    object: dict  # event.data.object as plain JSON


class GatewayError(DomainError):
    """A payment-service refusal; carries the intent/charge ids Stripe told us about."""

    def __init__(
        self, message: str, *, payment_intent_id: str | None = None, charge_id: str | None = None
    ):
        super().__init__(message)
        self.payment_intent_id = payment_intent_id
        self.charge_id = charge_id


class PaymentDeclined(GatewayError):
    pass


class AuthenticationRequired(GatewayError):
    pass


class GatewayUnavailable(GatewayError):
    pass


class GatewayRefused(GatewayError):
    """Stripe rejected the request itself (unknown id, wrong state)."""


class InvalidSignature(DomainError):
    pass


class MalformedEvent(DomainError):
    """A correctly signed webhook whose content we cannot use (kept, marked failed)."""

    def __init__(self, message: str, event_id: str | None = None, event_type=None):
        super().__init__(message)
        self.event_id = event_id
        self.event_type = event_type if isinstance(event_type, str) else ""


EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,76}$")
EVENT_TYPE = re.compile(r"^[a-z_]+(\.[a-z_]+){1,4}$")


UNAVAILABLE = "The payment service is not answering right now. Please try again in a few minutes."
DECLINED = "Your card was declined."
NEEDS_AUTHENTICATION = (
    "Your bank asks you to confirm this payment. Please use another card or contact your bank."
)


# --- The client ---------------------------------------------------------------------


def client() -> stripe.StripeClient:
    """The app's Stripe client (one per app, built from its configuration)."""
    app = current_app._get_current_object()
    cached = app.extensions.get("stripe_client")
    if cached is None:
        # The library logs every request at INFO; keep our logs about outcomes.
        logging.getLogger("stripe").setLevel(logging.WARNING)
        cached = stripe.StripeClient(
            app.config["STRIPE_API_KEY"],
            base_addresses={"api": app.config["STRIPE_API_BASE"]},
            max_network_retries=0,
        )
        app.extensions["stripe_client"] = cached
    return cached


def _field(obj, name: str):
    # Stripe objects are not dicts, and localstripe omits some fields altogether.
    return obj[name] if name in obj else None  # noqa: SIM401 - no .get on StripeObject


def _id(value) -> str | None:
    # Expandable fields come back either as an id or as the whole object.
    if value is None or isinstance(value, str):
        return value
    return value.id


def _intent_of_charge(charge_id: str | None) -> str | None:
    if not charge_id:
        return None
    try:
        return _id(client().v1.charges.retrieve(charge_id).payment_intent)
    except stripe.StripeError:
        return None


@contextmanager
def _translated() -> Iterator[None]:
    """Turn Stripe's exceptions into our domain errors."""
    try:
        yield
    except stripe.CardError as exc:
        error = exc.error
        charge_id = getattr(error, "charge", None) if error else None
        intent_id = _id(getattr(error, "payment_intent", None)) if error else None
        # localstripe leaves error.payment_intent empty: find it through the charge.
        intent_id = intent_id or _intent_of_charge(charge_id)
        kind = AuthenticationRequired if exc.code == "authentication_required" else PaymentDeclined
        message = NEEDS_AUTHENTICATION if kind is AuthenticationRequired else _declined(exc)
        raise kind(message, payment_intent_id=intent_id, charge_id=charge_id) from exc
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.AuthenticationError) as exc:
        log.warning("Stripe unavailable: %s", exc.__class__.__name__)
        raise GatewayUnavailable(UNAVAILABLE) from exc
    except stripe.InvalidRequestError as exc:
        raise GatewayRefused(
            exc.user_message or "The payment service refused the request."
        ) from exc
    except stripe.StripeError as exc:
        log.warning("Stripe error %s (HTTP %s)", exc.__class__.__name__, exc.http_status)
        raise GatewayUnavailable(UNAVAILABLE) from exc


def _declined(exc: stripe.CardError) -> str:
    reason = (exc.user_message or "").strip()
    if not reason or reason == DECLINED:
        return f"{DECLINED} No money was taken. Please use another card."
    return f"{DECLINED} {reason}"


# --- Customers and cards ------------------------------------------------------------


def ensure_customer(db: Session, account: Account) -> str:
    """The account's Stripe customer id, creating the customer on first use (commits)."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    with _translated():
        customer = client().v1.customers.create(
            params={
                "name": account.name,
                "email": account.email or None,
                "metadata": {"account_id": str(account.id), "account_number": account.number},
            },
            # Scoped by creation time too, so two databases sharing a Stripe account never collide.
            options={
                "idempotency_key": f"customer-{account.id}-{account.created_at:%Y%m%d%H%M%S%f}"
            },
        )
    account.stripe_customer_id = customer.id
    db.commit()
    return customer.id


def customer_exists(customer_id: str) -> bool:
    """Whether Stripe knows this customer (a restarted localstripe forgets everything)."""
    try:
        with _translated():
            customer = client().v1.customers.retrieve(customer_id)
    except GatewayRefused:
        return False
    return not _field(customer, "deleted")


def create_setup_intent(customer_id: str) -> SetupIntentInfo:
    """A SetupIntent for saving a card for later off-session charges."""
    with _translated():
        intent = client().v1.setup_intents.create(
            params={
                "customer": customer_id,
                "payment_method_types": ["card"],
                "usage": "off_session",
            }
        )
    return SetupIntentInfo(id=intent.id, client_secret=intent.client_secret)


def _card_info(payment_method) -> CardInfo:
    card = payment_method.card
    return CardInfo(
        payment_method_id=payment_method.id,
        brand=str(card.brand or "card"),
        last4=str(card.last4),
        exp_month=int(card.exp_month),
        exp_year=int(card.exp_year),
        fingerprint=str(_field(card, "fingerprint") or "")[:64] or None,
    )


def card_from_setup_intent(setup_intent_id: str, customer_id: str) -> CardInfo:
    """The card saved by a succeeded SetupIntent of this customer, attached to it."""
    with _translated():
        intent = client().v1.setup_intents.retrieve(setup_intent_id)
        if _id(intent.customer) != customer_id:
            raise GatewayRefused(_("This card setup does not belong to your account."))
        if intent.status != "succeeded" or not intent.payment_method:
            raise GatewayRefused(_("The card was not confirmed. Please enter it again."))
        method = client().v1.payment_methods.retrieve(_id(intent.payment_method))
        # localstripe does not attach the payment method itself (Stripe does): do it here.
        if _id(_field(method, "customer")) != customer_id:
            method = client().v1.payment_methods.attach(method.id, params={"customer": customer_id})
    return _card_info(method)


def detach_payment_method(pm_id: str) -> None:
    """Detach a card from its customer in Stripe."""
    with _translated():
        client().v1.payment_methods.detach(pm_id)


# --- Charges ------------------------------------------------------------------------


def _charge_result(intent) -> ChargeResult:
    error = _field(intent, "last_payment_error")
    return ChargeResult(
        payment_intent_id=intent.id,
        status=intent.status,
        charge_id=_id(_field(intent, "latest_charge")),
        failure_message=(_field(error, "message") or "") if error else "",
    )


def charge_off_session(
    *,
    customer_id: str,
    payment_method_id: str,
    amount_minor: int,
    currency: str,
    idempotency_key: str,
    metadata: dict[str, str],
) -> ChargeResult:
    """Charge a saved card without the customer present.

    Raises PaymentDeclined, AuthenticationRequired or GatewayUnavailable.
    """
    with _translated():
        intent = client().v1.payment_intents.create(
            params={
                "customer": customer_id,
                "payment_method": payment_method_id,
                "amount": amount_minor,
                "currency": currency.lower(),
                "confirm": True,
                "off_session": True,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
    result = _charge_result(intent)
    if result.status == "requires_action":
        raise AuthenticationRequired(
            NEEDS_AUTHENTICATION,
            payment_intent_id=result.payment_intent_id,
            charge_id=result.charge_id,
        )
    if result.status in ("requires_payment_method", "canceled"):
        raise PaymentDeclined(
            result.failure_message or f"{DECLINED} No money was taken.",
            payment_intent_id=result.payment_intent_id,
            charge_id=result.charge_id,
        )
    return result


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    status: str
    amount_minor: int


def create_refund(
    *, payment_intent_id: str, amount_minor: int, idempotency_key: str, metadata: dict[str, str]
) -> RefundResult:
    """Refund (part of) a succeeded PaymentIntent. GatewayRefused / GatewayUnavailable."""
    with _translated():
        refund = client().v1.refunds.create(
            params={
                "payment_intent": payment_intent_id,
                "amount": amount_minor,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
    return RefundResult(
        refund_id=refund.id, status=str(refund.status), amount_minor=int(refund.amount)
    )


def payment_intent_client_secret(pi_id: str) -> str:
    """The client secret Stripe.js needs to finish a PaymentIntent in the browser (3-D Secure)."""
    with _translated():
        return client().v1.payment_intents.retrieve(pi_id).client_secret


def retrieve_payment_intent(pi_id: str) -> ChargeResult:
    """The current state of a PaymentIntent (for reconciling pending payments)."""
    with _translated():
        return _charge_result(client().v1.payment_intents.retrieve(pi_id))


# --- Webhooks -----------------------------------------------------------------------


def construct_event(payload: bytes, sig_header: str | None, secret: str) -> StripeEvent:
    """Verify a webhook's signature and timestamp, then parse it.

    InvalidSignature when the signature is bad (nothing may be stored); MalformedEvent
    when it is signed by Stripe but not an event we can read (stored as failed).
    """
    verify_signature(payload, sig_header, secret)
    return parse_event(payload)


def verify_signature(payload: bytes, sig_header: str | None, secret: str) -> None:
    if not sig_header or not secret:
        raise InvalidSignature("Missing Stripe signature.")
    try:
        stripe.WebhookSignature.verify_header(
            payload, sig_header, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature("Bad Stripe signature.") from exc
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidSignature("Bad Stripe signature.") from exc


def parse_event(payload: bytes) -> StripeEvent:
    """The event's id, type and data.object; MalformedEvent (with the reason) otherwise."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent("The body is not JSON.") from exc
    if not isinstance(data, dict):
        raise MalformedEvent("The body is not a JSON object.")
    event_id, event_type = data.get("id"), data.get("type")
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        raise MalformedEvent("The event has no valid id.", event_id=None, event_type=event_type)
    if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
        raise MalformedEvent("The event has no valid type.", event_id=event_id)
    created = data.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise MalformedEvent("The event has no creation time.", event_id, event_type)
    if created > time.time() + WEBHOOK_TOLERANCE_SECONDS:
        raise MalformedEvent("The event is dated in the future.", event_id, event_type)
    obj = (data.get("data") or {}).get("object") if isinstance(data.get("data"), dict) else None
    if not isinstance(obj, dict):
        raise MalformedEvent("data.object is not an object.", event_id, event_type)
    return StripeEvent(id=event_id, type=event_type, object=obj)


# --- Development and tests only -----------------------------------------------------


def _require_test_mode() -> None:
    if not current_app.config["STRIPE_API_KEY"].startswith("sk_test"):
        raise RuntimeError(_("Test cards can only be created with a test-mode Stripe key."))


def create_test_card(
    customer_id: str | None, number: str, *, exp_month: int = 12, exp_year: int = 2034
) -> CardInfo:
    """DEV/TEST ONLY: create a card from a test number and attach it to the customer.

    Real card numbers must never pass through our server; this exists for seeding the
    demo and for tests against localstripe, and refuses to run with a live key.
    """
    _require_test_mode()
    with _translated():
        method = client().v1.payment_methods.create(
            params={
                "type": "card",
                "card": {
                    "number": number,
                    "exp_month": exp_month,
                    "exp_year": exp_year,
                    "cvc": "123",
                },
            }
        )
        if customer_id:
            method = client().v1.payment_methods.attach(method.id, params={"customer": customer_id})
    return _card_info(method)


def confirm_test_setup_intent(setup_intent_id: str, payment_method_id: str) -> None:
    """DEV/TEST ONLY: confirm a SetupIntent as Stripe.js would in the browser."""
    _require_test_mode()
    with _translated():
        client().v1.setup_intents.confirm(
            setup_intent_id, params={"payment_method": payment_method_id}
        )
