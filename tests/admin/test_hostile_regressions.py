"""Regressions found by tests/reliability/test_hostile_input.py (never a 500)."""

from __future__ import annotations

import pytest

from tests.admin.test_topup_cards import world  # noqa: F401
from tests.builders import login


@pytest.mark.parametrize("query", ["reseller=%20", "status=%20", "reseller=%20&status=%20%20"])
def test_blank_only_filters_are_ignored_not_a_500(client, world, query):  # noqa: F811
    """Found by tests/reliability/test_hostile_input.py: Optional() let ' ' reach int()."""
    login(client, "op@example.test")
    assert client.get(f"/admin/topup-cards?{query}").status_code == 200


def test_a_non_ascii_reseller_name_twice_is_refused_not_a_500(client, db, world):  # noqa: F811
    """Found by the hostile-input test: SQLite's lower() folds ASCII only."""
    login(client, "op@example.test")
    form = {"name": "Ê-Reseller", "currency": "GBP"}
    first = client.post("/admin/resellers", data=form)
    assert first.status_code < 500
    again = client.post("/admin/resellers", data=form)
    assert again.status_code < 500
    assert "already exists" in again.get_data(as_text=True)
