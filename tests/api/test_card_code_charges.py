"""Card codes in use: the switch charges calls to a card code's credit through the API.

201 with Credit Left, 402 when the credit does not cover the call (Credit Left 0: no calls),
Unlimited never runs out until a negative amount limits it, one debit per idempotency key,
another reseller's code does not exist. Credit Management shows the usage.
"""

from __future__ import annotations

import threading

import pytest

from portal import api_tokens, card_codes
from portal.models import CardCode, CardCodeCharge, Role, User
from tests.builders import login, make_account, make_reseller, make_user


@pytest.fixture
def world(db):
    reseller, other = make_reseller(db), make_reseller(db)
    account = make_account(db, reseller=reseller)
    foreign_account = make_account(db, reseller=other)
    admin = make_user(db, role=Role.RESELLER_ADMIN, reseller=reseller, email="cc@admin.test")
    limited = CardCode(
        reseller_id=reseller.id,
        account_id=account.id,
        code="1234",
        credit_minor=500,
        currency="GBP",
    )
    unlimited = CardCode(
        reseller_id=reseller.id,
        account_id=account.id,
        code="5678",
        unlimited=True,
        credit_minor=None,
        currency="GBP",
    )
    foreign = CardCode(
        reseller_id=other.id,
        account_id=foreign_account.id,
        code="9999",
        credit_minor=500,
        currency="GBP",
    )
    db.add_all([limited, unlimited, foreign])
    token = api_tokens.create_token(db, reseller_id=reseller.id, name="switch")
    db.commit()
    return {
        "limited": limited.id,
        "unlimited": unlimited.id,
        "admin": admin.id,
        "headers": {"Authorization": f"Bearer {token.plaintext}"},
    }


def call(client, headers, code="1234", amount="1.50", key="k1", description="Call to +44 20"):
    body = {"amount": amount, "description": description, "idempotency_key": key}
    return client.post(f"/api/v1/card-codes/{code}/charges", json=body, headers=headers)


def credit(db, card_id):
    db.rollback()
    return db.get(CardCode, card_id).credit_minor


def test_charges_debit_the_credit_once_per_key_then_402_when_it_runs_out(client, db, world):
    first = call(client, world["headers"])
    assert first.status_code == 201
    assert first.get_json() | {"charge_id": 0} == {
        "code": "1234",
        "amount": "1.50",
        "credit_left": "3.50",
        "currency": "GBP",
        "charge_id": 0,
    }
    again = call(client, world["headers"])  # the switch retried: the same answer, no debit
    assert (again.status_code, again.get_json()) == (201, first.get_json())
    assert credit(db, world["limited"]) == 350
    assert (
        call(client, world["headers"], amount="3.50", key="k2").get_json()["credit_left"] == "0.00"
    )
    refused = call(client, world["headers"], amount="0.01", key="k3")
    assert refused.status_code == 402
    body = refused.get_json()
    assert (body["error"], body["credit_left"]) == ("insufficient_credit", "0.00")
    assert credit(db, world["limited"]) == 0
    # The same key with another amount is a client error, not a second charge.
    assert call(client, world["headers"], amount="2.00").status_code == 422


def test_unlimited_never_runs_out_until_a_negative_amount_limits_it(client, db, world):
    for n in range(3):
        answer = call(client, world["headers"], code="5678", amount="400.00", key=f"u{n}")
        assert (answer.status_code, answer.get_json()["credit_left"]) == (201, "Unlimited")
    assert credit(db, world["unlimited"]) is None
    admin = db.get(User, world["admin"])
    card_codes.add_credit(
        db,
        card_code=db.get(CardCode, world["unlimited"]),
        amount_minor=-1000,
        unlimited=False,
        order_number="LIMIT-1",
        actor=admin,
    )
    answer = call(client, world["headers"], code="5678", amount="0.01", key="u-after")
    assert (answer.status_code, answer.get_json()["credit_left"]) == (402, "0.00")


@pytest.mark.parametrize("code", ["9999", "0000", "12", "abcd", "1" * 21])
def test_foreign_or_unknown_codes_are_not_found(client, db, world, code):
    assert call(client, world["headers"], code=code).status_code == 404
    assert db.query(CardCodeCharge).count() == 0


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"amount": "1.00"},
        {"amount": "-1.00", "description": "x", "idempotency_key": "a"},
        {"amount": "1e3", "description": "x", "idempotency_key": "a"},
    ],
)
def test_bad_bodies_get_422_and_change_nothing(client, db, world, body):
    answer = client.post("/api/v1/card-codes/1234/charges", json=body, headers=world["headers"])
    assert answer.status_code == 422
    assert credit(db, world["limited"]) == 500


def test_no_token_no_charge(client, db, world):
    assert call(client, {}).status_code == 401
    assert credit(db, world["limited"]) == 500


def test_answers_match_the_openapi_schemas(client, world):
    doc = client.get("/api/v1/openapi.json").get_json()
    responses = doc["paths"]["/card-codes/{code}/charges"]["post"]["responses"]
    schemas = doc["components"]["schemas"]

    def check(response, status):
        assert response.status_code == status
        ref = responses[str(status)]["content"]["application/json"]["schema"]["$ref"]
        schema = schemas[ref.split("/")[-1]]
        body = response.get_json()
        assert set(schema["required"]) <= set(body)
        assert set(body) <= set(schema["properties"])

    check(call(client, world["headers"]), 201)
    check(call(client, world["headers"], code="5678", key="u"), 201)
    check(call(client, world["headers"], amount="99.00", key="big"), 402)
    check(call(client, world["headers"], amount="x", key="bad"), 422)
    check(call(client, world["headers"], code="9999"), 404)


def test_credit_management_shows_the_usage(client, db, world):
    call(client, world["headers"], description="Call to +44 20 7946 0000")
    call(client, world["headers"], amount="99.00", key="big", description="Long call")
    login(client, "cc@admin.test")
    html = client.get(f"/admin/card-codes/{world['limited']}/credit").get_data(as_text=True)
    usage = html[html.index('id="card-code-usage"') :]
    assert "Call to +44 20 7946 0000" in usage and "£1.50" in usage and "£3.50" in usage
    assert "Refused: credit too low" in usage and "Long call" in usage


@pytest.mark.postgres
def test_parallel_calls_never_overspend_the_credit(pg_app, pg_db):
    reseller = make_reseller(pg_db)
    account = make_account(pg_db, reseller=reseller)
    card = CardCode(
        reseller_id=reseller.id,
        account_id=account.id,
        code="4321",
        credit_minor=1000,
        currency="GBP",
    )
    pg_db.add(card)
    token = api_tokens.create_token(pg_db, reseller_id=reseller.id, name="switch")
    pg_db.commit()
    headers = {"Authorization": f"Bearer {token.plaintext}"}
    start = threading.Barrier(12)
    statuses = []

    def one(n):
        client = pg_app.test_client()
        start.wait()
        statuses.append(
            call(client, headers, code="4321", amount="1.00", key=f"p{n % 10}").status_code
        )

    threads = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    pg_db.rollback()
    assert sorted(set(statuses)) == [201]
    assert pg_db.get(CardCode, card.id).credit_minor == 0  # ten distinct keys, 1.00 each
    assert pg_db.query(CardCodeCharge).count() == 10
