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
from portal.models import AccountStatus, BillingModel
from portal.money import supported_currencies

MODEL_CHOICES = choices([(m.value, m.value.capitalize()) for m in BillingModel])
STATUS_CHOICES = choices([(s.value, s.value.capitalize()) for s in AccountStatus])


class CustomerSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search, it changes nothing

    q = StringField("Search", validators=[Optional(), Length(max=100)])
    reseller = SelectField("Reseller", validators=[Optional()])


class CustomerForm(FlaskForm):
    """Create a customer account (editing uses CustomerEditForm)."""

    reseller_id = SelectField("Reseller")
    number = StringField("Account number", validators=[InputRequired(), Length(max=32)])
    name = StringField("Name", validators=[InputRequired(), Length(max=200)])
    email = StringField("Email", validators=[Optional(), Length(max=254)])
    currency_code = SelectField(
        "Currency", choices=choices([(c, c) for c in supported_currencies()]), default="GBP"
    )
    billing_model = RadioField("Balance model", choices=MODEL_CHOICES, default="prepaid")
    customer_class_id = SelectField("Customer class", default="")
    credit_limit = MoneyField("Permanent Credit Limit", allow_zero=True, default="0.00")

    def validate_on_submit(self, extra_validators=None):
        # MoneyField reads the currency from the form; it is the chosen one here.
        self.currency = self.currency_code.data or "GBP"
        return super().validate_on_submit(extra_validators)


class CustomerEditForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=200)])
    email = StringField("Email", validators=[Optional(), Length(max=254)])
    status = SelectField("Status", choices=STATUS_CHOICES)
    customer_class_id = SelectField("Customer class", default="")


class CustomerUserForm(FlaskForm):
    email = StringField("Email", validators=[InputRequired(), Length(max=254)])
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    password = PasswordField("Password", validators=[InputRequired()])
    can_redeem_vouchers = BooleanField("May redeem vouchers", default=True)


class CustomerUserEditForm(FlaskForm):
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    password = PasswordField("New password", validators=[Optional()])
    can_redeem_vouchers = BooleanField("May redeem vouchers")
    active = BooleanField("Active (may sign in)")


# --- Balance & Credits tab ---------------------------------------------------------------


class PermanentLimitForm(FlaskForm):
    credit_limit = MoneyField("Permanent Credit Limit", allow_zero=True)


class TemporaryIncreaseForm(FlaskForm):
    increase = StringField(
        "Temporary Credit Limit Increase",
        validators=[InputRequired(message="Enter an amount such as 50.00 or a percentage.")],
    )
    valid_until = DateTimeLocalField(
        "Valid Until",
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[InputRequired(message="Enter the date and time the increase ends.")],
    )


class ThresholdsForm(FlaskForm):
    # The label depends on the balance model; the view sets it (credit.threshold_label).
    thresholds = StringField("Warning Threshold", validators=[Length(max=400)])


class TransfersForm(FlaskForm):
    transfers = RadioField(
        "Subscriber-to-Subscriber transfers allowed",
        choices=choices([(k.value, v) for k, v in TRANSFER_LABELS.items()]),
    )


class ManualPaymentForm(FlaskForm):
    kind = RadioField(
        "Type",
        choices=choices([("payment", "Manual payment"), ("adjustment", "Balance adjustment")]),
        default="payment",
    )
    amount = MoneyField("Amount", allow_negative=True)
    order_number = StringField("Order number", validators=[Optional(), Length(max=60)])
    reason = StringField("Reason", validators=[InputRequired(), Length(max=200)])
    # A fresh key per rendered form: a double submit never records the payment twice.
    idempotency_key = HiddenField(
        default=lambda: uuid.uuid4().hex,
        validators=[InputRequired(), Regexp(r"^[A-Za-z0-9-]{8,64}$")],
    )
