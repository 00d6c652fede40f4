"""Shared form fields: money typed by people, parsed with Decimal."""

from __future__ import annotations

from wtforms import DateField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from portal.i18n import money_error
from portal.money import MoneyError, parse_amount


def choices(pairs) -> list[SelectChoice]:
    """Select/radio choices from (value, label) pairs (WTForms 3.3 style)."""
    return [SelectChoice(str(value), label) for value, label in pairs]


class MoneyField(StringField):
    """A text field holding an amount; `.minor` is the parsed value in minor units.

    The currency comes from the form's `currency` attribute.
    """

    def __init__(
        self, label=None, validators=None, *, allow_negative=False, allow_zero=False, **kwargs
    ):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off"})
        super().__init__(label, validators, **kwargs)
        self.allow_negative = allow_negative
        self.allow_zero = allow_zero
        self.minor: int | None = None

    def pre_validate(self, form) -> None:
        try:
            self.minor = parse_amount(
                self.data,
                form.currency,
                allow_negative=self.allow_negative,
                allow_zero=self.allow_zero,
            )
        except MoneyError as exc:
            self.minor = None
            raise ValidationError(money_error(str(exc))) from exc


class DayField(DateField):
    """A date typed the way the portal shows dates ("02 Dec 2026"), or as 2026-12-02.

    A text box rather than the browser's date picker, which shows the browser's own format
    (mm/dd/yyyy in an American browser) beside the portal's "02 Dec 2026".
    """

    FORMATS = ["%d %b %Y", "%Y-%m-%d", "%d %B %Y", "%d/%m/%Y"]

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("format", self.FORMATS)
        kwargs["render_kw"] = {
            "type": "text",
            "placeholder": "e.g. 02 Dec 2026",
            "autocomplete": "off",
            "size": 12,
            **kwargs.get("render_kw", {}),
        }
        super().__init__(label, validators, **kwargs)
