"""Rounding edges of proration and included tax (issue 16: found by mutation testing)."""

import pytest

from portal import invoices, plans


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (7, 2, 4),  # 3.5: the odd quotient rounds up to even
        (9, 2, 4),  # 4.5: the even quotient stays
        (5, 2, 2),  # 2.5 -> 2
        (-7, 2, -4),  # -3.5 -> -4
        (17, 1, 17),  # a denominator of one is fine
        (2, 3, 1),
        (1, 3, 0),
    ],
)
def test_divide_half_even(numerator, denominator, expected):
    assert plans.divide_half_even(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -3])
def test_divide_half_even_refuses_non_positive_denominators(denominator):
    with pytest.raises(ValueError, match=r"^denominator must be positive$"):
        plans.divide_half_even(10, denominator)


@pytest.mark.parametrize(
    ("total", "rate_bp", "tax"),
    [
        (1_000_000, 2000, 166667),  # 166,666.67 of a 20 % tax-inclusive total
        (1_000_000, 500, 47619),  # 47,619.05 at 5 %
        (6, 2000, 1),  # exactly 1
        (3, 2000, 0),  # 0.5 rounds half-even to 0
        (9, 2000, 2),  # 1.5 rounds half-even to 2
    ],
)
def test_included_tax_rounds_half_even(total, rate_bp, tax):
    assert invoices.included_tax(total, rate_bp) == tax
