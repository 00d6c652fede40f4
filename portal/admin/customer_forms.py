"""Forms of the customers area (list search, account, users, Balance & Credits tab)."""

from __future__ import annotations

import uuid

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
)
from wtforms.validators import InputRequired, Length, Optional, Regexp

from portal.credit import TRANSFER_LABELS
from portal.forms import MoneyField, choices
from portal.i18n import _l
from portal.models import AccountStatus, BillingModel
from portal.money import supported_currencies

MODEL_CHOICES = choices([(m.value, _l(m.value.capitalize())) for m in BillingModel])
STATUS_CHOICES = choices([(s.value, _l(s.value.capitalize())) for s in AccountStatus])


class CustomerSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search, it changes nothing

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)])
    reseller = SelectField(_l("Reseller"), validators=[Optional()])


class CustomerForm(FlaskForm):
    """Create a customer account (editing uses CustomerEditForm)."""

    reseller_id = SelectField(_l("Reseller"))
    number = StringField(_l("Account number"), validators=[InputRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    email = StringField(_l("Email"), validators=[Optional(), Length(max=254)])
    currency_code = SelectField(
        _l("Currency"), choices=choices([(c, c) for c in supported_currencies()]), default="GBP"
    )
    billing_model = RadioField(_l("Balance model"), choices=MODEL_CHOICES, default="prepaid")
    customer_class_id = SelectField(_l("Customer class"), default="")
    credit_limit = MoneyField(_l("Permanent Credit Limit"), allow_zero=True, default="0.00")

    def validate_on_submit(self, extra_validators=None):
        # MoneyField reads the currency from the form; it is the chosen one here.
        self.currency = self.currency_code.data or "GBP"
        return super().validate_on_submit(extra_validators)


class CustomerEditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    email = StringField(_l("Email"), validators=[Optional(), Length(max=254)])
    status = SelectField(_l("Status"), choices=STATUS_CHOICES)
    customer_class_id = SelectField(_l("Customer class"), default="")


class CustomerUserForm(FlaskForm):
    email = StringField(_l("Email"), validators=[InputRequired(), Length(max=254)])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    password = PasswordField(_l("Password"), validators=[InputRequired()])
    can_redeem_vouchers = BooleanField(_l("May redeem vouchers"), default=True)


class CustomerUserEditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    password = PasswordField(_l("New password"), validators=[Optional()])
    can_redeem_vouchers = BooleanField(_l("May redeem vouchers"))
    active = BooleanField(_l("Active (may sign in)"))


# --- Balance & Credits tab ---------------------------------------------------------------


class PermanentLimitForm(FlaskForm):
    credit_limit = MoneyField(_l("Permanent Credit Limit"), allow_zero=True)


class TemporaryIncreaseForm(FlaskForm):
    increase = StringField(
        _l("Temporary Credit Limit Increase"),
        validators=[InputRequired(message=_l("Enter an amount such as 50.00 or a percentage."))],
    )
    valid_until = DateTimeLocalField(
        _l("Valid Until"),
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[InputRequired(message=_l("Enter the date and time the increase ends."))],
    )


class ThresholdsForm(FlaskForm):
    # The label depends on the balance model; the view sets it (credit.threshold_label).
    thresholds = StringField(_l("Warning Threshold"), validators=[Length(max=400)])


class TransfersForm(FlaskForm):
    transfers = RadioField(
        _l("Subscriber-to-Subscriber transfers allowed"),
        choices=choices([(k.value, _l(v)) for k, v in TRANSFER_LABELS.items()]),
    )


class ManualPaymentForm(FlaskForm):
    kind = RadioField(
        _l("Type"),
        choices=choices([("payment", "Manual payment"), ("adjustment", "Balance adjustment")]),
        default="payment",
    )
    amount = MoneyField(_l("Amount"), allow_negative=True)
    order_number = StringField(_l("Order number"), validators=[Optional(), Length(max=60)])
    reason = StringField(_l("Reason"), validators=[InputRequired(), Length(max=200)])
    # A fresh key per rendered form: a double submit never records the payment twice.
    idempotency_key = HiddenField(
        default=lambda: uuid.uuid4().hex,
        validators=[InputRequired(), Regexp(r"^[A-Za-z0-9-]{8,64}$")],
    )
