"""Forms of the card and top-up pages (card numbers never come through any of them)."""

from __future__ import annotations

import re
import uuid

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, StringField
from wtforms.validators import InputRequired, Length, Regexp

from portal.forms import MoneyField, choices
from portal.i18n import _l
from portal.models import TopupProduct
from portal.money import format_money

IDEMPOTENCY_KEY = re.compile(r"^[0-9a-f]{32}$")


def new_request_key() -> str:
    """A fresh key per rendered form: a double submit of one form charges once."""
    return uuid.uuid4().hex


class TopUpForm(FlaskForm):
    product_id = RadioField(
        _l("Top-up amount"),
        validate_choice=False,  # the domain refuses unknown or inactive products
        validators=[InputRequired(message=_l("Choose a top-up amount."))],
    )
    idempotency_key = HiddenField(
        validators=[
            InputRequired(message=_l("Reload the page and try again.")),
            Regexp(IDEMPOTENCY_KEY, message=_l("Reload the page and try again.")),
        ]
    )

    def __init__(self, *args, products: list[TopupProduct], **kwargs):
        super().__init__(*args, **kwargs)
        self.product_id.choices = choices(
            [(p.id, p.label or format_money(p.amount_minor, p.currency)) for p in products]
        )

    def product_id_value(self) -> int | None:
        raw = self.product_id.data or ""
        return int(raw) if raw.isdigit() and len(raw) < 10 else None


class AddCardForm(FlaskForm):
    setup_intent_id = StringField(
        _l("Card setup"), validators=[InputRequired("The card setup is missing."), Length(max=80)]
    )


class TopupSettingsForm(FlaskForm):
    enabled = BooleanField(_l("Automatic top-up"))
    threshold = MoneyField(_l("My balance hit the threshold of"), allow_zero=True)
    amount = MoneyField(_l("Top up the following amount"))

    def __init__(self, *args, currency: str, **kwargs):
        self.currency = currency
        super().__init__(*args, **kwargs)

    def add_error(self, field: str | None, message: str) -> None:
        target = getattr(self, field, None) if field else None
        if target is None:
            self.form_errors.append(message)
        else:
            target.errors = [*target.errors, message]


class PayInvoiceForm(FlaskForm):
    """Pay now: an amount up to the invoice's amount due, charged to the saved cards."""

    amount = MoneyField(_l("Amount to pay"))
    idempotency_key = HiddenField(
        validators=[
            InputRequired(message=_l("Reload the page and try again.")),
            Regexp(IDEMPOTENCY_KEY, message=_l("Reload the page and try again.")),
        ]
    )

    def __init__(self, *args, currency: str, **kwargs):
        self.currency = currency
        super().__init__(*args, **kwargs)
