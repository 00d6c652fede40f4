"""schemathesis against /api/v1/openapi.json through WSGI: no 500s, answers match the schema.

Generated requests go to the Flask app in-process (no server). Most use a valid bearer
token of the account's reseller and, half the time, a real account number, so the
charge and balance code paths run, not only the 404 for random numbers. After the run
the ledger audit must pass: whatever was accepted was booked properly.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from portal import api_tokens
from portal.ledger import audit_balances, post_entry
from portal.models import BillingModel, EntryKind
from tests.builders import make_account, make_reseller

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def app_config():
    return {"AFTER_DEBIT_CHECKS": "off"}


@pytest.fixture
def world(db):
    reseller = make_reseller(db)
    prepaid = make_account(db, reseller=reseller, number="700001")
    make_account(
        db, reseller=reseller, number="700002", model=BillingModel.POSTPAID, credit_limit_minor=500
    )
    make_account(db, reseller=make_reseller(db), number="800001")  # another reseller's
    post_entry(
        db,
        account_id=prepaid.id,
        kind=EntryKind.TOPUP,
        amount_minor=500_000,
        description="Opening",
        idempotency_key="open",
    )
    token = api_tokens.create_token(db, reseller_id=reseller.id, name="fuzz")
    db.commit()
    return token.plaintext


def test_the_document_is_a_valid_openapi_schema(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        "POST /accounts/{account_number}/charges",
        "GET /accounts/{account_number}/balance",
        "POST /card-codes/{code}/charges",
    }


@pytest.mark.slow
def test_generated_requests_never_500_and_match_the_schema(app, db, world):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    strategies = [
        op.as_strategy(generation_mode=mode)
        for op in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    auth = st.sampled_from(
        [
            {"Authorization": f"Bearer {world}"},
            {"Authorization": f"Bearer {world}"},
            {"Authorization": "Bearer not-a-token"},
            {},
        ]
    )
    numbers = st.sampled_from(["700001", "700002", "800001", None])
    # The schema types amount as a string (its format is checked by the server), so
    # generated values are rarely amounts: sometimes put a plausible one in.
    amounts = st.one_of(
        st.none(),
        st.decimals(min_value="0.01", max_value="2.00", places=2).map(str),
    )
    seen: set[int] = set()

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=st.one_of(strategies), headers=auth, number=numbers, amount=amounts)
    def run(case, headers, number, amount):
        if number is not None and "account_number" in (case.path_parameters or {}):
            case.path_parameters["account_number"] = number
        if amount is not None and isinstance(case.body, dict):
            # Generated text is mostly unprintable (refused with 422): make some bodies
            # plausible so the debit path itself is exercised too.
            case.body.update(amount=amount, description="Call", idempotency_key=amount)
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        seen.add(response.status_code)

    run()
    # The run reached the interesting answers, not only 401/404.
    assert {200, 201, 401, 404, 422} <= seen, seen
    db.rollback()
    assert audit_balances(db) == []
