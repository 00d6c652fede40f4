"""Money input and display: integer minor units in, Babel-formatted text out."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import cache

from babel import Locale
from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)

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
    """Format minor units for display, e.g. 1250 GBP -> '£12.50' (exactly Babel's text)."""
    if minor is None:
        return "Unlimited"
    return money_formatter(currency, str(locale))(minor)


class MoneyFormatter:
    """Babel's currency format of one currency in one locale, as integer arithmetic.

    Built once from Babel's data (the locale's standard currency pattern, symbols and
    grouping, the currency's digits); formatting is then string work on the integer minor
    units, ~10x cheaper than Babel's Decimal path. At build time it formats probe amounts
    both ways; a locale whose pattern it does not reproduce exactly keeps Babel's own
    formatting (`fast` is False). tests/test_money.py checks it against Babel.
    """

    PROBES = (
        0,
        1,
        -1,
        7,
        99,
        100,
        -100,
        1234,
        12345,
        -12345,
        123456,
        1234567,
        -98765432,
        10**12 + 5,
        -(10**15) - 1,
    )

    def __init__(self, currency: str, locale: str):
        self.currency = currency
        self.babel_locale = Locale.parse(locale)
        self.pattern = self.babel_locale.currency_formats["standard"]
        self.digits = get_currency_precision(currency)
        self.scale = 10**self.digits
        symbol = get_currency_symbol(currency, self.babel_locale)
        prefix, suffix = self.pattern.prefix, self.pattern.suffix
        self.positive = (prefix[0].replace("¤", symbol), suffix[0].replace("¤", symbol))
        self.negative = (prefix[1].replace("¤", symbol), suffix[1].replace("¤", symbol))
        self.decimal = get_decimal_symbol(self.babel_locale)
        self.group = get_group_symbol(self.babel_locale)
        self.primary, self.secondary = self.pattern.grouping
        self.fast = all(self._fast(m) == self._babel(m) for m in self.PROBES)

    def __call__(self, minor: int) -> str:
        return self._fast(minor) if self.fast else self._babel(minor)

    def _babel(self, minor: int) -> str:
        return self.pattern.apply(
            to_decimal(minor, self.currency), self.babel_locale, currency=self.currency
        )

    def _fast(self, minor: int) -> str:
        major, fraction = divmod(abs(minor), self.scale)
        digits = str(major)
        if len(digits) > self.primary:
            head, groups = digits[: -self.primary], [digits[-self.primary :]]
            while len(head) > self.secondary:
                groups.append(head[-self.secondary :])
                head = head[: -self.secondary]
            digits = self.group.join([head, *reversed(groups)])
        if self.digits:
            digits = f"{digits}{self.decimal}{fraction:0{self.digits}d}"
        prefix, suffix = self.negative if minor < 0 else self.positive
        return f"{prefix}{digits}{suffix}"


@cache
def money_formatter(currency: str, locale: str = DEFAULT_LOCALE) -> MoneyFormatter:
    """The one formatter per currency and locale (built on first use, kept per process)."""
    return MoneyFormatter(currency, locale)


def format_plain(minor: int, currency: str) -> str:
    """Format for a form field value: '12.50' (no symbol, no grouping)."""
    return f"{to_decimal(minor, currency):.{minor_digits(currency)}f}"
