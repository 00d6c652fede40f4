from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.money import MoneyError, format_money, format_plain, parse_amount


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
