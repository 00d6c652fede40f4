"""Card codes and their credit: every rule of SPEC section 6, plus input checks and isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.models import AuditLog, CardCode, CardCodeRecharge, Role, utcnow
from portal.settings import set_setting
from tests.builders import login, make_account, make_customer, make_reseller, make_user


@pytest.fixture
def world(db):
    acme = make_reseller(db, name="Acme")
    beta = make_reseller(db, name="Beta")
    alice = make_account(db, reseller=acme, name="Alice")
    carol = make_account(db, reseller=beta, name="Carol")
    make_user(db, role=Role.OPERATOR, email="op@example.test")
    make_user(db, role=Role.RESELLER_ADMIN, reseller=acme, email="a@example.test")
    make_user(db, role=Role.RESELLER_ADMIN, reseller=beta, email="b@example.test")
    db.commit()
    return {"acme": acme.id, "beta": beta.id, "alice": alice.id, "carol": carol.id}


def make_code(db, world, *, code="12345678", unlimited=False, credit_minor=2000, **fields):
    card = CardCode(
        reseller_id=fields.pop("reseller_id", world["acme"]),
        account_id=fields.pop("account_id", world["alice"]),
        code=code,
        unlimited=unlimited,
        credit_minor=None if unlimited else credit_minor,
        currency="GBP",
        **fields,
    )
    db.add(card)
    db.commit()
    return card


def add_credit(client, card, **data):
    return client.post(f"/admin/card-codes/{card.id}/credit", data=data)


def state(db, card):
    db.rollback()
    db.refresh(card)
    recharges = db.scalars(
        select(CardCodeRecharge)
        .where(CardCodeRecharge.card_code_id == card.id)
        .order_by(CardCodeRecharge.id)
    ).all()
    return (
        card.unlimited,
        card.credit_minor,
        [(r.order_number, r.credit_added_minor, r.credit_left_minor) for r in recharges],
    )


# --- the credit page ----------------------------------------------------------------------


def test_credit_page_title_hint_and_history_columns(client, db, world):
    card = make_code(db, world, credit_minor=1250)
    login(client, "a@example.test")
    page = client.get(f"/admin/card-codes/{card.id}/credit").get_data(as_text=True)
    assert "Credit Management for Card Code 12345678" in page
    assert "(currently 12.50 GBP left)" in page
    for text in ("Recharge History", "Order Number", "Credit Added", "Credit Left", "Date Added"):
        assert text in page
    assert ">Order number</label>" in page and "Unlimited" in page
    assert ">OK</button>" in page and ">Cancel</a>" in page


def test_hint_for_unlimited_credit(client, db, world):
    card = make_code(db, world, unlimited=True)
    login(client, "a@example.test")
    page = client.get(f"/admin/card-codes/{card.id}/credit").get_data(as_text=True)
    assert "(currently Unlimited)" in page


def test_increase_credit(client, db, world):
    card = make_code(db, world, credit_minor=2000)
    login(client, "a@example.test")
    response = add_credit(client, card, amount="5.50", order_number="ORD-1")
    assert "Credit for order ORD-1 added." in response.get_data(as_text=True)
    assert state(db, card) == (False, 2550, [("ORD-1", 550, 2550)])
    assert db.scalar(select(AuditLog).where(AuditLog.action == "card_codes.add_credit"))


def test_decrease_credit_to_zero(client, db, world):
    card = make_code(db, world, credit_minor=2000)
    login(client, "a@example.test")
    add_credit(client, card, amount="-20.00", order_number="ORD-2")
    assert state(db, card) == (False, 0, [("ORD-2", -2000, 0)])


def test_decrease_below_zero_is_refused(client, db, world):
    card = make_code(db, world, credit_minor=2000)
    login(client, "a@example.test")
    body = add_credit(client, card, amount="-20.01", order_number="ORD-3").get_data(as_text=True)
    assert "The credit cannot go below 0: this card code has only £20.00 left." in body
    assert state(db, card) == (False, 2000, [])


def test_unlimited_checkbox_sets_unlimited(client, db, world):
    card = make_code(db, world, credit_minor=700)
    login(client, "a@example.test")
    add_credit(client, card, unlimited="y", order_number="ORD-4")
    assert state(db, card) == (True, None, [("ORD-4", None, None)])
    page = client.get(f"/admin/card-codes/{card.id}/credit").get_data(as_text=True)
    assert "(currently Unlimited)" in page


def test_negative_amount_on_unlimited_leaves_zero_and_records_the_negative(client, db, world):
    card = make_code(db, world, unlimited=True)
    login(client, "a@example.test")
    body = add_credit(client, card, amount="-10", order_number="ORD-5").get_data(as_text=True)
    assert "(currently 0.00 GBP left)" in body
    assert state(db, card) == (False, 0, [("ORD-5", -1000, 0)])


def test_positive_amount_on_unlimited_is_refused(client, db, world):
    card = make_code(db, world, unlimited=True)
    login(client, "a@example.test")
    body = add_credit(client, card, amount="10", order_number="ORD-6").get_data(as_text=True)
    assert "a negative amount limits it to 0" in body
    assert state(db, card) == (True, None, [])


def test_currency_is_the_server_default(client, db, world):
    set_setting(db, "default_currency", "EUR")
    db.commit()
    card = make_code(db, world, credit_minor=0)
    login(client, "a@example.test")
    body = add_credit(client, card, amount="3", order_number="EUR-1").get_data(as_text=True)
    assert "(currently 3.00 EUR left)" in body
    db.rollback()
    db.refresh(card)
    assert card.currency == "EUR" and card.credit_minor == 300


def test_same_order_number_is_not_added_twice(client, db, world):
    card = make_code(db, world, credit_minor=0)
    login(client, "a@example.test")
    add_credit(client, card, amount="1", order_number="DUP")
    body = add_credit(client, card, amount="1", order_number="DUP").get_data(as_text=True)
    assert "Order DUP was already added" in body
    assert state(db, card)[1] == 100


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "0", "order_number": "X"}, "greater than zero"),
        ({"amount": "", "order_number": "X"}, "other than zero"),
        ({"amount": "NaN", "order_number": "X"}, "plain number"),
        ({"amount": "inf", "order_number": "X"}, "plain number"),
        ({"amount": "1.234", "order_number": "X"}, "at most 2 decimals"),
        ({"amount": "99999999999", "order_number": "X"}, "Enter an amount up to"),
        ({"amount": "2000000", "order_number": "X"}, "up to 1,000,000"),
        ({"amount": "5", "order_number": ""}, "Enter the order number."),
        ({"amount": "5", "order_number": "x" * 61}, "at most 60"),
        ({"amount": "5", "unlimited": "y", "order_number": "X"}, "Leave the amount empty"),
    ],
)
def test_bad_credit_input_gives_message_and_changes_nothing(client, db, world, data, message):
    card = make_code(db, world, credit_minor=2000)
    login(client, "a@example.test")
    response = add_credit(client, card, **data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert state(db, card) == (False, 2000, [])


def test_search_recharges_by_order_number_and_dates(client, db, world):
    card = make_code(db, world, credit_minor=0)
    now = utcnow()
    for order, days_ago in (("A-100", 0), ("A-200", 5), ("B-300", 20)):
        db.add(
            CardCodeRecharge(
                card_code_id=card.id,
                order_number=order,
                credit_added_minor=100,
                credit_left_minor=100,
                created_at=now - timedelta(days=days_ago),
            )
        )
    db.commit()
    login(client, "a@example.test")

    def orders(query: str) -> set[str]:
        body = client.get(f"/admin/card-codes/{card.id}/credit?{query}").get_data(as_text=True)
        return {o for o in ("A-100", "A-200", "B-300") if f"<td>{o}</td>" in body}

    today = now.date()
    assert orders("") == {"A-100", "A-200", "B-300"}
    assert orders("order=A-") == {"A-100", "A-200"}
    assert orders("order=300") == {"B-300"}
    assert orders(f"date_from={(today - timedelta(days=6)).isoformat()}") == {"A-100", "A-200"}
    assert orders(f"date_to={(today - timedelta(days=1)).isoformat()}") == {"A-200", "B-300"}
    week_ago = (today - timedelta(days=7)).isoformat()
    assert orders(
        f"order=A&date_from={week_ago}&date_to={(today - timedelta(days=1)).isoformat()}"
    ) == {"A-200"}
    assert orders("order=%25") == set()  # a literal %, not a wildcard
    bad = client.get(f"/admin/card-codes/{card.id}/credit?date_from=2024-02-31")
    assert bad.status_code == 200 and "Correct the search" in bad.get_data(as_text=True)


def test_htmx_history_search_returns_fragment(client, db, world):
    card = make_code(db, world)
    login(client, "a@example.test")
    response = client.get(
        f"/admin/card-codes/{card.id}/credit?order=x",
        headers={"HX-Request": "true", "HX-Target": "recharge-history"},
    )
    body = response.get_data(as_text=True)
    assert "<html" not in body and 'id="recharge-history"' in body


# --- list, add, generate ---------------------------------------------------------------------


def test_list_shows_codes_of_own_reseller_only(app, client, db, world):
    make_code(db, world, code="11112222", unlimited=True)
    make_code(db, world, code="33334444", reseller_id=world["beta"], account_id=world["carol"])
    login(client, "a@example.test")
    page = client.get("/admin/card-codes").get_data(as_text=True)
    assert "11112222" in page and "Unlimited" in page and "33334444" not in page
    assert "Add card code" in page and "Generate card codes" in page
    operator = app.test_client()
    login(operator, "op@example.test")
    page = operator.get("/admin/card-codes").get_data(as_text=True)
    assert "11112222" in page and "33334444" in page


def test_add_card_code_with_initial_credit(client, db, world):
    login(client, "a@example.test")
    response = client.post(
        "/admin/card-codes/add",
        data={
            "add-code": "0042",
            "add-account_id": str(world["alice"]),
            "add-extension": "0003*001",
            "add-initial_credit": "15",
        },
    )
    assert "Card code 0042 added." in response.get_data(as_text=True)
    db.rollback()
    card = db.scalar(select(CardCode).where(CardCode.code == "0042"))
    assert (card.reseller_id, card.credit_minor, card.unlimited) == (world["acme"], 1500, False)
    assert [r.credit_added_minor for r in card.recharges] == [1500]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"add-code": "123"}, "4 to 20 digits"),
        ({"add-code": "12a4"}, "4 to 20 digits"),
        ({"add-code": "1" * 21}, "4 to 20 digits"),
        ({"add-code": "12345678"}, "already in use"),
        ({"add-account_id": "carol"}, "Not a valid choice"),
        ({"add-initial_credit": "-1"}, "Enter a positive amount."),
        ({"add-initial_credit": "NaN"}, "plain number"),
        ({"add-initial_credit": "5", "add-unlimited": "y"}, "Leave the credit empty"),
    ],
)
def test_bad_add_card_code_input(client, db, world, fields, message):
    make_code(db, world, code="12345678")
    login(client, "a@example.test")
    data = {"add-code": "5555", "add-account_id": str(world["alice"]), **fields}
    if data["add-account_id"] == "carol":
        data["add-account_id"] = str(world["carol"])  # another reseller's account
    body = client.post("/admin/card-codes/add", data=data).get_data(as_text=True)
    assert message in body
    db.rollback()
    assert db.scalar(select(func.count()).select_from(CardCode)) == 1


def test_same_code_allowed_for_another_reseller(client, db, world):
    make_code(db, world, code="77778888")
    login(client, "b@example.test")
    data = {"add-code": "77778888", "add-account_id": str(world["carol"])}
    assert "added." in client.post("/admin/card-codes/add", data=data).get_data(as_text=True)


def test_generate_unique_card_codes_unlimited(client, db, world):
    login(client, "a@example.test")
    response = client.post(
        "/admin/card-codes/generate",
        data={
            "gen-quantity": "25",
            "gen-code_length": "6",
            "gen-account_id": str(world["alice"]),
            "gen-unlimited": "y",
        },
    )
    assert "25 card codes generated." in response.get_data(as_text=True)
    db.rollback()
    cards = db.scalars(select(CardCode)).all()
    assert len({c.code for c in cards}) == 25
    assert all(len(c.code) == 6 and c.code.isdigit() and c.unlimited for c in cards)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gen-quantity": "0"}, "from 1 to 10,000"),
        ({"gen-quantity": "10001"}, "from 1 to 10,000"),
        ({"gen-quantity": "x"}, "Not a valid integer"),
        ({"gen-code_length": "3"}, "4 to 20 digits"),
        ({"gen-code_length": "21"}, "4 to 20 digits"),
        ({"gen-quantity": "1001", "gen-code_length": "4"}, "choose a longer code"),
        ({"gen-initial_credit": "-5"}, "Enter a positive amount."),
    ],
)
def test_bad_generate_input(client, db, world, fields, message):
    login(client, "a@example.test")
    data = {"gen-quantity": "2", "gen-code_length": "8", "gen-account_id": str(world["alice"])}
    body = client.post("/admin/card-codes/generate", data={**data, **fields}).get_data(as_text=True)
    assert message in body
    db.rollback()
    assert db.scalar(select(func.count()).select_from(CardCode)) == 0


def test_foreign_card_code_answers_404(client, db, world):
    card = make_code(db, world, reseller_id=world["beta"], account_id=world["carol"])
    login(client, "a@example.test")
    assert client.get(f"/admin/card-codes/{card.id}/credit").status_code == 404
    assert add_credit(client, card, amount="5", order_number="X").status_code == 404
    assert state(db, card) == (False, 2000, [])


def test_customer_gets_403(client, db, world):
    customer = make_customer(db)
    db.commit()
    login(client, customer.email)
    assert client.get("/admin/card-codes").status_code == 403
