"""Money input and display: integer minor units in, Babel-formatted text out."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision

# Largest amount anyone may type: 10 billion major units. Anything bigger is a typo or an attack.
MAX_MAJOR = Decimal("10000000000")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?$", re.ASCII)
_SUPPORTED = {"GBP", "USD", "EUR", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "JPY", "PLN"}
DEFAULT_LOCALE = "en_GB"


class MoneyError(ValueError):
    """A user-facing reason why an amount was refused."""


def minor_digits(currency: str) -> int:
    return get_currency_precision(currency)


def supported_currencies() -> list[str]:
    return sorted(_SUPPORTED)


def parse_amount(
    text: str | None,
    currency: str,
    *,
    allow_negative: bool = False,
    allow_zero: bool = False,
    max_major: Decimal = MAX_MAJOR,
) -> int:
    """Parse a typed amount (e.g. "12.50") into minor units of `currency`."""
    raw = (text or "").strip().replace("\u00a0", "").replace(" ", "")
    if not raw:
        raise MoneyError("Enter an amount.")
    if len(raw) > 32 or not _PLAIN_NUMBER.match(raw):
        raise MoneyError("Enter a plain number such as 12.50.")
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise MoneyError("Enter a plain number such as 12.50.") from exc
    digits = minor_digits(currency)
    if -value.as_tuple().exponent > digits:
        if digits == 0:
            raise MoneyError(f"{currency} amounts have no decimals.")
        raise MoneyError(f"Use at most {digits} decimals for {currency}.")
    if abs(value) > max_major:
        raise MoneyError(f"Enter an amount up to {format_major(max_major, currency)}.")
    if value < 0 and not allow_negative:
        raise MoneyError("Enter a positive amount.")
    if value == 0 and not allow_zero:
        raise MoneyError("Enter an amount greater than zero.")
    return int(value.scaleb(digits))


def to_decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-minor_digits(currency))


def format_major(value: Decimal, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    return format_currency(value, currency, locale=locale)


def format_money(minor: int | None, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """Format minor units for display, e.g. 1250 GBP -> '£12.50'."""
    if minor is None:
        return "Unlimited"
    babel_locale, pattern = _currency_pattern(locale)
    return pattern.apply(to_decimal(minor, currency), babel_locale, currency=currency)


@cache
def _currency_pattern(locale: str):
    # Same result as babel.numbers.format_currency, without parsing the locale on every call
    # (a history page formats dozens of amounts).
    babel_locale = Locale.parse(locale)
    return babel_locale, babel_locale.currency_formats["standard"]


def format_plain(minor: int, currency: str) -> str:
    """Format for a form field value: '12.50' (no symbol, no grouping)."""
    return f"{to_decimal(minor, currency):.{minor_digits(currency)}f}"
