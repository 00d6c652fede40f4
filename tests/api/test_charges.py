"""The switch API: tokens, charges (201/402/404/422, idempotent replay), balance, OpenAPI."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from portal import api_tokens
from portal.models import ApiCharge, ApiToken, BillingModel, EntryKind, LedgerEntry, utcnow
from tests.builders import make_account, make_reseller


@pytest.fixture
def app_config():
    return {"AFTER_DEBIT_CHECKS": "off"}


@pytest.fixture
def world(db):
    reseller = make_reseller(db)
    other = make_reseller(db)
    account = make_account(db, reseller=reseller, number="500001")
    foreign = make_account(db, reseller=other, number="600001")
    postpaid = make_account(
        db,
        reseller=reseller,
        number="500002",
        model=BillingModel.POSTPAID,
        credit_limit_minor=5000,
    )
    from portal.ledger import post_entry

    post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=1000,
        description="Opening",
        idempotency_key="open",
    )
    token = api_tokens.create_token(db, reseller_id=reseller.id, name="switch")
    db.commit()
    return {
        "account": account,
        "foreign": foreign,
        "postpaid": postpaid,
        "headers": {"Authorization": f"Bearer {token.plaintext}"},
        "token": token.token,
    }


def charge(client, headers, number="500001", **body):
    payload = {"amount": "1.25", "description": "Call to +44 20", "idempotency_key": "k1"}
    payload.update(body)
    return client.post(f"/api/v1/accounts/{number}/charges", json=payload, headers=headers)


def entries(db, account_id):
    db.rollback()
    return db.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.account_id == account_id)
    )


def test_charge_debits_and_answers_201(client, db, world):
    response = charge(client, world["headers"])
    assert response.status_code == 201
    body = response.get_json()
    assert body["balance"] == "8.75"
    assert body["available_funds"] == "8.75"
    assert body["currency"] == "GBP"
    db.rollback()
    entry = db.get(LedgerEntry, body["entry_id"])
    assert entry.amount_minor == -125 and entry.kind == EntryKind.USAGE
    assert entry.description == "Call to +44 20"
    db.refresh(world["account"])
    assert world["account"].balance_minor == 875


def test_replayed_key_returns_the_first_answer_and_debits_once(client, db, world):
    first = charge(client, world["headers"])
    second = charge(client, world["headers"])
    assert second.status_code == 201
    assert second.get_json() == first.get_json()
    assert entries(db, world["account"].id) == 2  # opening top-up + one charge


def test_replay_with_a_different_amount_is_refused(client, db, world):
    charge(client, world["headers"])
    response = charge(client, world["headers"], amount="2.00")
    assert response.status_code == 422
    assert "idempotency_key" in response.get_json()["errors"]
    assert entries(db, world["account"].id) == 2


def test_funds_short_gives_402_and_changes_nothing(client, db, world):
    response = charge(client, world["headers"], amount="10.01")
    assert response.status_code == 402
    body = response.get_json()
    assert body["error"] == "insufficient_funds"
    assert "do not cover" in body["message"]
    assert body["available_funds"] == "10.00"
    assert entries(db, world["account"].id) == 1
    # The refusal is the first answer for this key, even once funds would suffice.
    again = charge(client, world["headers"], amount="10.01")
    assert again.status_code == 402 and again.get_json() == body


def test_exact_available_funds_is_allowed(client, db, world):
    assert charge(client, world["headers"], amount="10.00").status_code == 201
    db.rollback()
    db.refresh(world["account"])
    assert world["account"].balance_minor == 0


def test_postpaid_uses_the_credit_limit(client, db, world):
    response = charge(client, world["headers"], number="500002", amount="49.00")
    assert response.status_code == 201
    assert response.get_json()["balance"] == "-49.00"
    assert response.get_json()["available_funds"] == "1.00"
    assert (
        charge(
            client, world["headers"], number="500002", amount="1.01", idempotency_key="k2"
        ).status_code
        == 402
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer vbp_wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
def test_missing_or_wrong_token_gives_401(client, db, world, headers):
    response = charge(client, headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/accounts/500001/balance", headers=headers).status_code == 401
    assert entries(db, world["account"].id) == 1


def test_revoked_token_gives_401(client, db, world):
    token = db.merge(world["token"])
    api_tokens.revoke_token(db, token=token)
    db.commit()
    assert charge(client, world["headers"]).status_code == 401
    assert entries(db, world["account"].id) == 1


def test_other_resellers_account_is_404(client, db, world):
    response = charge(client, world["headers"], number="600001")
    assert response.status_code == 404
    assert (
        client.get("/api/v1/accounts/600001/balance", headers=world["headers"]).status_code == 404
    )
    assert charge(client, world["headers"], number="nope").status_code == 404
    assert entries(db, world["foreign"].id) == 0


def test_operator_token_reaches_every_reseller(client, db, world):
    token = api_tokens.create_token(db, reseller_id=None, name="operator")
    db.commit()
    headers = {"Authorization": f"Bearer {token.plaintext}"}
    assert client.get("/api/v1/accounts/600001/balance", headers=headers).status_code == 200


def test_token_is_stored_hashed_and_use_is_recorded(client, db, world):
    db.rollback()
    token = db.get(ApiToken, world["token"].id)
    plaintext = world["headers"]["Authorization"].split()[1]
    assert token.token_hash != plaintext and plaintext not in token.token_hash
    assert plaintext.startswith(token.prefix)
    charge(client, world["headers"])
    db.rollback()
    assert db.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token.id)) is not None


BAD_BODIES = [
    ({"amount": None}, "amount"),
    ({"amount": 1.25}, "amount"),
    ({"amount": 125}, "amount"),
    ({"amount": "NaN"}, "amount"),
    ({"amount": "Infinity"}, "amount"),
    ({"amount": "1e3"}, "amount"),
    ({"amount": "-1.00"}, "amount"),
    ({"amount": "0"}, "amount"),
    ({"amount": "0.00"}, "amount"),
    ({"amount": "1.001"}, "amount"),
    ({"amount": "99999999999999999999"}, "amount"),
    ({"amount": ""}, "amount"),
    ({"amount": "abc"}, "amount"),
    ({"description": ""}, "description"),
    ({"description": 5}, "description"),
    ({"description": "x" * 201}, "description"),
    ({"description": "bad\x00char"}, "description"),
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": ["a"]}, "idempotency_key"),
    ({"idempotency_key": "k" * 101}, "idempotency_key"),
]


@pytest.mark.parametrize(("change", "field"), BAD_BODIES)
def test_bad_input_gives_422_with_field_errors(client, db, world, change, field):
    response = charge(client, world["headers"], **change)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert entries(db, world["account"].id) == 1


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[1, 2]", b'"text"', b"", b'{"amount": "1.00"', b"\xff\xfe"],
)
def test_non_json_or_non_object_body_gives_422(client, db, world, data):
    response = client.post(
        "/api/v1/accounts/500001/charges",
        data=data,
        headers={**world["headers"], "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.get_json()["errors"]
    assert entries(db, world["account"].id) == 1


def test_missing_fields_are_all_listed(client, world):
    response = client.post("/api/v1/accounts/500001/charges", json={}, headers=world["headers"])
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"amount", "description", "idempotency_key"}


def test_wrong_method_and_long_number_never_500(client, world):
    assert (
        client.put("/api/v1/accounts/500001/charges", headers=world["headers"]).status_code == 405
    )
    long_number = "9" * 500
    assert charge(client, world["headers"], number=long_number).status_code == 404


def test_balance(client, db, world):
    response = client.get("/api/v1/accounts/500002/balance", headers=world["headers"])
    assert response.status_code == 200
    assert response.get_json() == {
        "account": "500002",
        "balance": "0.00",
        "credit_limit": "50.00",
        "available_funds": "50.00",
        "currency": "GBP",
    }


def test_a_charge_stores_its_answer(client, db, world):
    charge(client, world["headers"])
    db.rollback()
    row = db.scalar(select(ApiCharge))
    assert row.status_code == 201 and json.loads(row.response_json)["balance"] == "8.75"
    assert row.created_at <= utcnow()


def test_openapi_document_describes_the_answers(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    post = doc["paths"]["/accounts/{account_number}/charges"]["post"]
    assert set(post["responses"]) >= {"201", "401", "402", "404", "422"}
    assert "/accounts/{account_number}/balance" in doc["paths"]
    charge_schema = doc["components"]["schemas"]["ChargeRequest"]
    assert charge_schema["required"] == ["amount", "description", "idempotency_key"]


def test_answers_match_the_openapi_schemas(client, world):
    doc = client.get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]

    def required(name):
        schema = schemas[name]
        if "allOf" in schema:
            return set().union(
                *(
                    required(s["$ref"].split("/")[-1]) if "$ref" in s else set(s["required"])
                    for s in schema["allOf"]
                )
            )
        return set(schema["required"])

    assert required("Charge") <= set(charge(client, world["headers"]).get_json())
    assert required("Refusal") <= set(
        charge(client, world["headers"], amount="99.00", idempotency_key="x").get_json()
    )
    assert required("Error") <= set(
        charge(client, world["headers"], amount="x", idempotency_key="y").get_json()
    )
    assert required("Balance") <= set(
        client.get("/api/v1/accounts/500001/balance", headers=world["headers"]).get_json()
    )
