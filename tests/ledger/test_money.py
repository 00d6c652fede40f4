from decimal import Decimal

import pytest
from babel import Locale
from babel.numbers import format_currency, get_currency_precision
from hypothesis import given
from hypothesis import strategies as st

from portal.money import (
    MoneyError,
    MoneyFormatter,
    format_major,
    format_money,
    format_plain,
    money_formatter,
    parse_amount,
    supported_currencies,
)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "GBP", 1250),
        ("12", "GBP", 1200),
        ("0.01", "GBP", 1),
        (" 1,234.56 ", "GBP", 123456),
        ("500", "JPY", 500),
        ("+3.1", "EUR", 310),
    ],
)
def test_parse_good_amounts(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Enter an amount"),
        ("NaN", "plain number"),
        ("Infinity", "plain number"),
        ("-inf", "plain number"),
        ("1e3", "plain number"),
        ("1E-2", "plain number"),
        ("12.345", "at most 2 decimals"),
        ("99999999999", "up to"),
        ("abc", "plain number"),
        ("1,23", "plain number"),
        ("-5", "positive"),
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("1" * 40, "plain number"),
        ("١٢", "plain number"),
        ("12.5.1", "plain number"),
        ("--1", "plain number"),
    ],
)
def test_parse_refuses_bad_amounts(text, message):
    with pytest.raises(MoneyError, match=message):
        parse_amount(text, "GBP")


def test_parse_refuses_decimals_for_zero_decimal_currency():
    with pytest.raises(MoneyError, match="no decimals"):
        parse_amount("5.5", "JPY")


def test_negative_and_zero_only_when_allowed():
    assert parse_amount("-10", "GBP", allow_negative=True) == -1000
    assert parse_amount("0", "GBP", allow_zero=True) == 0


def test_format_uses_babel():
    assert format_money(1250, "GBP") == "£12.50"
    assert format_money(-123456, "GBP") == "-£1,234.56"
    assert format_money(500, "JPY") == "JP¥500"
    assert format_money(None, "GBP") == "Unlimited"


@given(st.integers(min_value=-(10**10), max_value=10**10), st.sampled_from(["GBP", "USD", "JPY"]))
def test_plain_format_round_trips(minor, currency):
    text = format_plain(minor, currency)
    assert parse_amount(text, currency, allow_negative=True, allow_zero=True) == minor


@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal("1000000"),
    )
)
def test_two_decimal_amounts_parse_exactly(value):
    assert parse_amount(str(value), "GBP") == int(value * 100)


# --- edges found by mutation testing (issue 16) ----------------------------------------


@pytest.mark.parametrize(
    "text",
    ["1 234.56", "1\u00a0234.56", " 1 234.56\u00a0", "1,234.56", "12 34.56"],
)
def test_spaces_and_no_break_spaces_between_digits_are_ignored(text):
    assert parse_amount(text, "GBP") == 123456


def test_the_length_limit_is_32_characters_after_spaces_are_removed():
    longest = "0" * 27 + "12.50"
    assert len(longest) == 32
    assert parse_amount(longest, "GBP") == 1250
    assert parse_amount(" ".join(longest), "GBP") == 1250  # spaces do not count
    with pytest.raises(MoneyError, match="plain number"):
        parse_amount("0" + longest, "GBP")


def test_the_largest_amount_is_allowed_and_one_minor_unit_more_is_not():
    assert parse_amount("10000000000", "GBP") == 10**12
    assert parse_amount("-10000000000", "GBP", allow_negative=True) == -(10**12)
    with pytest.raises(MoneyError):
        parse_amount("10000000000.01", "GBP")


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("  ", "GBP", "Enter an amount."),
        ("12,5", "GBP", "Enter a plain number such as 12.50."),
        ("1.5", "JPY", "JPY amounts have no decimals."),
        ("1.555", "GBP", "Use at most 2 decimals for GBP."),
        ("99999999999", "GBP", "Enter an amount up to £10,000,000,000.00."),
        ("99999999999", "EUR", "Enter an amount up to €10,000,000,000.00."),
        ("-1", "GBP", "Enter a positive amount."),
        ("0", "GBP", "Enter an amount greater than zero."),
    ],
)
def test_refusal_messages_are_exact(text, currency, message):
    with pytest.raises(MoneyError) as refused:
        parse_amount(text, currency)
    assert str(refused.value) == message


def test_supported_currencies_are_sorted():
    currencies = supported_currencies()
    assert currencies == sorted(currencies) and {"GBP", "EUR", "JPY"} <= set(currencies)


def test_format_major_uses_the_currency_and_locale():
    assert format_major(Decimal("1234.5"), "EUR", locale="de_DE") == "1.234,50\u00a0€"
    assert format_major(Decimal("1234.5"), "USD") == "US$1,234.50"


# --- the one formatter per currency and locale, checked against Babel itself -------------

LOCALES = [
    "en_GB",
    "en_US",
    "de_DE",
    "es_ES",
    "fr_FR",
    "de_CH",
    "nl_NL",
    "en_IN",
    "sv_SE",
    "ja_JP",
    "pl_PL",
    "it_IT",
    "pt_BR",
    "da_DK",
    "nb_NO",
]


@given(
    st.integers(min_value=-(10**16), max_value=10**16),
    st.sampled_from(supported_currencies()),
    st.sampled_from(LOCALES),
)
def test_format_money_is_exactly_babels_text(minor, currency, locale):
    expected = format_currency(
        Decimal(minor).scaleb(-get_currency_precision(currency)), currency, locale=locale
    )
    assert format_money(minor, currency, locale) == expected
    assert format_money(minor, currency, locale=Locale.parse(locale)) == expected


@pytest.mark.parametrize("locale", ["en_GB", "de_DE", "es_ES", "en_IN", "fr_FR"])
def test_the_main_locales_take_the_integer_path(locale):
    # Without this the Babel comparison above would pass with the slow fallback everywhere.
    for currency in supported_currencies():
        formatter = money_formatter(currency, locale)
        assert formatter.fast
        assert formatter._fast(-1234567) == formatter._babel(-1234567)
    assert money_formatter("GBP", locale) is money_formatter("GBP", locale)  # one per pair


def test_a_pattern_the_integer_path_cannot_reproduce_keeps_babel():
    # de_CH's negative pattern is not grouped by Babel: the formatter notices and defers.
    formatter = money_formatter("CHF", "de_CH")
    assert not formatter.fast
    assert format_money(-123456789, "CHF", "de_CH") == format_currency(
        Decimal("-1234567.89"), "CHF", locale="de_CH"
    )


@pytest.mark.parametrize("locale", ["en_GB", "en_US", "de_DE", "es_ES", "fr_FR"])
@pytest.mark.parametrize("currency", ["GBP", "EUR", "USD", "JPY", "BHD"])
def test_the_shipped_locales_take_the_integer_path_without_babel(monkeypatch, locale, currency):
    """The fast path is not only correct when used but used: the build's self-check passes
    for the languages we ship, and formatting then never falls back to Babel's Decimal path."""
    formatter = MoneyFormatter(currency, locale)  # built here, not the process's cached one
    assert formatter.fast is True
    expected = {m: formatter._babel(m) for m in (0, -5, 1234567, -98765432101)}

    def no_babel(minor):  # the fallback must not be reached
        raise AssertionError("fell back to Babel")

    monkeypatch.setattr(formatter, "_babel", no_babel)
    for minor, text in expected.items():
        assert formatter(minor) == text
