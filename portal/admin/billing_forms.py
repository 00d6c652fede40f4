"""Forms of the admin Billing area (filters by GET; every POST form carries the CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, MonthField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from portal.billing_admin import STATUS_FILTERS, InvoiceFilters, month_start
from portal.forms import choices
from portal.i18n import _l
from portal.models import utcnow

STATUS_LABELS = {"draft": _l("Draft (generated, not sent)")}


class InvoiceFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search: bookmarkable, changes nothing

    status = SelectField(
        _l("Status"),
        choices=choices(
            [("", _l("Any"))]
            + [(s, STATUS_LABELS.get(s) or _l(s.capitalize())) for s in STATUS_FILTERS]
        ),
        # No Optional(): it would let whitespace past the choice check.
        default="",
    )
    period = MonthField(_l("Period (month it starts)"), validators=[Optional()])
    customer = StringField(
        _l("Customer (account number or name)"), validators=[Optional(), Length(max=100)]
    )

    def validate_period(self, field) -> None:
        if field.data and field.data > month_start(utcnow().date()):
            raise ValidationError(_l("That period is in the future: it has no invoices yet."))

    def filters(self) -> InvoiceFilters:
        return InvoiceFilters(
            status=self.status.data or "",
            period=self.period.data,
            customer=(self.customer.data or "").strip(),
        )


class GenerateForm(FlaskForm):
    """Generate the Invoice of the period the admin reviewed (sent as a hidden field)."""

    period = DateField(
        _l("Period start"), validators=[InputRequired(_l("Review the billing details first."))]
    )

    def validate_period(self, field) -> None:
        if field.data is None:
            raise ValidationError(_l("Review the billing details first."))


class VoidForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason for the credit note"),
        validators=[
            InputRequired(_l("Give a reason for the credit note.")),
            Length(max=300, message=_l("Keep the reason under 300 characters.")),
        ],
    )


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""
