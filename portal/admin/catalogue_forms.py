"""Forms of the catalogue and settings pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp

from portal.forms import MoneyField, choices
from portal.i18n import _l
from portal.money import supported_currencies

CURRENCIES = choices([(c, c) for c in supported_currencies()])
SERVICE = Regexp(r"^[a-z][a-z0-9_]{0,39}$", message=_l("Use lower-case letters, digits and _."))


class OptionalMoneyField(MoneyField):
    """A MoneyField that may be left blank (then `.minor` is None)."""

    def pre_validate(self, form) -> None:
        if not (self.data or "").strip():
            self.minor = None
            return
        super().pre_validate(form)


class CurrencyFromField(FlaskForm):
    """MoneyFields read the currency from the form: here, the chosen currency."""

    currency_code = SelectField(_l("Currency"), choices=CURRENCIES, default="GBP")

    def validate_on_submit(self, extra_validators=None):
        self.currency = self.currency_code.data or "GBP"
        return super().validate_on_submit(extra_validators)


class CustomerClassForm(FlaskForm):
    reseller_id = SelectField(_l("Reseller"))
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=120)])
    transfers_allowed = BooleanField(_l("Subscriber-to-Subscriber transfers allowed"))
    max_increase = OptionalMoneyField(
        _l("Maximum possible increase: amount"), allow_zero=True, validators=[Optional()]
    )
    max_increase_percent = IntegerField(
        _l("Maximum possible increase: percentage of the Permanent Credit Limit"),
        validators=[Optional(), NumberRange(min=0, max=1000)],
    )
    max_increase_days = IntegerField(
        _l("Maximum possible increase: longest validity (days)"),
        validators=[Optional(), NumberRange(min=1, max=3650)],
    )
    default_warning_thresholds = StringField(
        _l("Default warning thresholds"), validators=[Optional(), Length(max=400)]
    )


class ResellerForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=120)])
    currency_code = SelectField(_l("Currency"), choices=CURRENCIES, default="GBP")


class ResellerAdminForm(FlaskForm):
    email = StringField(_l("Email"), validators=[InputRequired(), Length(max=254)])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    password = PasswordField(_l("Password"), validators=[InputRequired()])


class PlanForm(CurrencyFromField):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=120)])
    price = MoneyField(_l("Price per month"), allow_zero=True)
    sort_order = IntegerField(
        _l("Sort order"), default=0, validators=[Optional(), NumberRange(min=0, max=10000)]
    )
    active = BooleanField(_l("Active (customers can choose it)"), default=True)


class PlanLicenseForm(FlaskForm):
    service = StringField(_l("Service key"), validators=[InputRequired(), SERVICE])
    label = StringField(_l("Label"), validators=[InputRequired(), Length(max=120)])
    limit = IntegerField(
        _l("Limit"), validators=[InputRequired(), NumberRange(min=0, max=1_000_000)]
    )
    sort_order = IntegerField(
        _l("Sort order"), default=0, validators=[Optional(), NumberRange(min=0, max=10000)]
    )


class AddOnForm(CurrencyFromField):
    service = StringField(_l("Service key"), validators=[InputRequired(), SERVICE])
    label = StringField(_l("Label"), validators=[InputRequired(), Length(max=120)])
    units = IntegerField(
        _l("Units added per purchase"),
        default=1,
        validators=[InputRequired(), NumberRange(1, 10000)],
    )
    price = MoneyField(_l("Price"))
    active = BooleanField(_l("Active (customers can buy it)"), default=True)


class TopupProductForm(CurrencyFromField):
    label = StringField(_l("Label"), validators=[Optional(), Length(max=120)])
    amount = MoneyField(_l("Amount"))
    active = BooleanField(_l("Active (customers can buy it)"), default=True)


class SettingsForm(FlaskForm):
    default_currency = SelectField(_l("Server default currency"), choices=CURRENCIES)
    tax_rate = StringField(_l("Tax rate for invoices (%)"), validators=[InputRequired()])
    invoice_net_days = IntegerField(
        _l("Payment terms (days from the invoice to its due date)"),
        validators=[Optional(), NumberRange(0, 365, message=_l("Enter 0 to 365 days."))],
    )
    invoice_reminder_days = StringField(
        _l("Reminders (days after the due date)"), validators=[Length(max=100)]
    )
