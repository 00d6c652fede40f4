"""Top-up cards: generation, search, mass edit, delete, reveal, CSV export, tenant isolation."""

from __future__ import annotations

import csv
import io
import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from portal import topup_cards
from portal.models import (
    AuditLog,
    BatchStatus,
    CardStatus,
    EntryKind,
    LedgerEntry,
    Reseller,
    Role,
    TopupCard,
    TopupCardBatch,
    User,
    utcnow,
)
from portal.pins import PinVault
from tests.builders import login, make_account, make_customer, make_reseller, make_user

_serials = itertools.count(1)
FUTURE = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def world(db):
    """Two resellers with an admin each, and the operator."""
    acme = make_reseller(db, name="Acme")
    beta = make_reseller(db, name="Beta")
    ids = {
        "acme": acme.id,
        "beta": beta.id,
        "operator": make_user(db, role=Role.OPERATOR, email="op@example.test").id,
        "acme_admin": make_user(
            db, role=Role.RESELLER_ADMIN, reseller=acme, email="a@example.test"
        ).id,
        "beta_admin": make_user(
            db, role=Role.RESELLER_ADMIN, reseller=beta, email="b@example.test"
        ).id,
    }
    db.commit()
    return ids


def generate(app, **overrides):
    """Generate a batch through the domain function; returns the batch id."""
    from portal import db as portal_db

    params = {
        "amount_minor": 1000,
        "quantity": 10,
        "series": "101",
        "pin_length": 8,
        "expires_at": utcnow() + timedelta(days=30),
        "actor_user_id": None,
        **overrides,
    }
    with app.app_context():
        batch = topup_cards.generate_cards(portal_db.session(), **params)
        return batch.id


def add_card(db, *, reseller_id, **fields) -> TopupCard:
    """A card row written directly (fast, and any state we need)."""
    n = next(_serials)
    card = TopupCard(
        reseller_id=reseller_id,
        serial=fields.pop("serial", f"T{n:03d}-{n:08d}"),
        series=fields.pop("series", f"T{n:03d}"),
        amount_minor=fields.pop("amount_minor", 1000),
        currency=fields.pop("currency", "GBP"),
        pin_hash=fields.pop("pin_hash", f"{n:064x}"),
        pin_encrypted=fields.pop("pin_encrypted", b"x"),
        pin_length=fields.pop("pin_length", 10),
        expires_at=fields.pop("expires_at", utcnow() + timedelta(days=30)),
        **fields,
    )
    db.add(card)
    db.flush()
    return card


def post_generate(client, reseller, **overrides):
    data = {
        "amount": "10.00",
        "quantity": "5",
        "series": "555",
        "pin_length": "8",
        "reseller_id": str(reseller),
        "expires_at": FUTURE,
        **overrides,
    }
    return client.post(
        "/admin/topup-cards/generate",
        data={f"generate-{key}": value for key, value in data.items()},
    )


def count_cards(db, **where) -> int:
    db.rollback()
    stmt = select(func.count()).select_from(TopupCard)
    for key, value in where.items():
        stmt = stmt.where(getattr(TopupCard, key) == value)
    return db.scalar(stmt)


# --- generation ---------------------------------------------------------------------------


def test_generate_form_creates_batch_with_serials_and_csv_link(client, db, world):
    login(client, "op@example.test")
    response = post_generate(client, world["acme"])
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Generated 5 top-up cards" in page
    assert "Download CSV" in page
    db.rollback()
    cards = db.scalars(select(TopupCard)).all()
    assert len(cards) == 5
    assert all(c.serial.startswith("555-") and c.serial[4:].isdigit() for c in cards)
    assert {c.amount_minor for c in cards} == {1000}
    assert {c.reseller_id for c in cards} == {world["acme"]}
    batch = db.scalar(select(TopupCardBatch))
    assert batch.status == BatchStatus.DONE and batch.generated == 5
    assert db.scalar(select(AuditLog).where(AuditLog.action == "topup_cards.generate"))


def test_pins_are_unique_across_batches_and_serials_unique(app, db, world):
    first = generate(app, reseller_id=world["acme"], quantity=1500, pin_length=7, series="9")
    second = generate(app, reseller_id=world["beta"], quantity=1500, pin_length=7, series="9")
    db.rollback()
    vault = PinVault("test-pin-key")
    cards = db.scalars(select(TopupCard).where(TopupCard.batch_id.in_([first, second]))).all()
    assert len(cards) == 3000
    pins = [vault.decrypt(c.pin_encrypted) for c in cards]
    assert len(set(pins)) == 3000
    assert all(len(p) == 7 and p.isdigit() for p in pins)
    assert len({c.serial for c in cards}) == 3000
    assert all(vault.hash(p) == c.pin_hash for p, c in zip(pins, cards, strict=True))


def test_pins_are_not_stored_in_plain_text(app, db, world):
    generate(app, reseller_id=world["acme"], quantity=20, pin_length=9)
    vault = PinVault("test-pin-key")
    raw_rows = db.execute(text("SELECT * FROM topup_cards")).mappings().all()
    assert len(raw_rows) == 20
    for row in raw_rows:
        pin = vault.decrypt(row["pin_encrypted"])
        for value in row.values():
            as_text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            assert pin not in as_text  # neither hash, ciphertext nor any column holds it
        assert len(row["pin_hash"]) == 64


def test_legacy_fernet_tokens_still_decrypt():
    vault = PinVault("k")
    legacy = vault._fernet.encrypt(b"5550001111")
    assert vault.decrypt(legacy) == "5550001111"
    assert vault.decrypt(vault.encrypt("12345")) == "12345"
    assert vault.encrypt("12345") != vault.encrypt("12345")  # random nonce


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pin_length": "4"}, "no less than 5"),
        ({"pin_length": ""}, "Enter the PIN length."),
        ({"pin_length": "17"}, "at most 16"),
        ({"amount": "-5"}, "Enter a positive amount."),
        ({"amount": "0"}, "greater than zero"),
        ({"amount": "NaN"}, "plain number"),
        ({"amount": "1e5"}, "plain number"),
        ({"amount": "10.001"}, "at most 2 decimals"),
        ({"amount": "99999999999"}, "Enter an amount up to"),
        ({"amount": "5000000"}, "too large"),
        ({"quantity": "0"}, "from 1 to 100,000"),
        ({"quantity": "100001"}, "from 1 to 100,000"),
        ({"quantity": "lots"}, "Not a valid integer"),
        ({"series": ""}, "Enter the series."),
        ({"series": "1 0"}, "letters or digits"),
        ({"series": "=cmd"}, "letters or digits"),
        ({"expires_at": "2020-01-01T00:00"}, "in the future"),
        ({"expires_at": "tomorrow"}, "Not a valid datetime"),
        ({"reseller_id": "999"}, "Not a valid choice"),
    ],
)
def test_bad_generate_input_gives_message_and_changes_nothing(
    client, db, world, overrides, message
):
    login(client, "op@example.test")
    response = post_generate(client, world["acme"], **overrides)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert count_cards(db) == 0
    assert db.scalar(select(func.count()).select_from(TopupCardBatch)) == 0


def test_guessable_batch_refused_with_longer_pin_suggested(app, client, db, world):
    generate(app, reseller_id=world["acme"], quantity=90, pin_length=5)  # 100 allowed
    login(client, "op@example.test")
    response = post_generate(client, world["acme"], quantity="11", pin_length="5")
    page = response.get_data(as_text=True)
    assert "easy to guess" in page
    assert "Choose a PIN length of 6 or more" in page
    assert count_cards(db) == 90
    assert post_generate(client, world["acme"], quantity="10", pin_length="5").status_code == 200
    assert count_cards(db) == 100


def test_reseller_admin_generates_only_for_own_reseller(client, db, world):
    login(client, "a@example.test")
    response = post_generate(client, world["beta"])
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert count_cards(db) == 0
    post_generate(client, world["acme"])
    assert count_cards(db, reseller_id=world["acme"]) == 5


@pytest.mark.slow
def test_hundred_thousand_cards_generate_in_well_under_a_minute(app, db, world):
    started = time.monotonic()
    batch_id = generate(app, reseller_id=world["acme"], quantity=100_000, pin_length=10)
    elapsed = time.monotonic() - started
    assert elapsed < 45, f"took {elapsed:.1f}s"
    assert count_cards(db, batch_id=batch_id) == 100_000
    assert db.scalar(select(func.count(func.distinct(TopupCard.pin_hash)))) == 100_000


def test_large_batch_runs_in_background_and_reports_progress(client, db, world):
    login(client, "op@example.test")
    response = post_generate(client, world["acme"], quantity="2500")
    page = response.get_data(as_text=True)
    db.rollback()
    batch_id = db.scalar(select(TopupCardBatch.id))
    assert "Generat" in page
    for _ in range(300):
        progress = client.get(
            f"/admin/topup-cards/batches/{batch_id}", headers={"HX-Request": "true"}
        )
        if "Download CSV" in progress.get_data(as_text=True):
            break
        assert "<progress" in progress.get_data(as_text=True)
        time.sleep(0.1)
    else:
        pytest.fail("batch did not finish")
    assert progress.headers.get("HX-Trigger") == "cards-changed"
    assert count_cards(db) == 2500


# --- atomic visibility ----------------------------------------------------------------------


def test_batch_is_invisible_until_complete_and_a_rerun_finishes_it_once(
    app, db, world, monkeypatch
):
    from portal import db as portal_db

    monkeypatch.setattr(topup_cards, "CHUNK_SIZE", 10)
    operator = db.get(User, world["operator"])
    with app.app_context():
        session = portal_db.session()
        batch = topup_cards.plan_batch(
            session,
            reseller_id=world["acme"],
            amount_minor=500,
            quantity=25,
            series="77",
            pin_length=8,
            expires_at=utcnow() + timedelta(days=1),
            actor_user_id=None,
        )
        topup_cards._generate_chunk(session, batch.id)  # then the process "dies"
        assert count_cards(db) == 10
        page = topup_cards.search_cards(session, actor=operator, filters=topup_cards.CardFilters())
        assert page.total == 0 and page.rows == []
        topup_cards.run_batch(session, batch_id=batch.id)  # the rerun
        topup_cards.run_batch(session, batch_id=batch.id)  # and again: nothing more
        page = topup_cards.search_cards(session, actor=operator, filters=topup_cards.CardFilters())
    assert page.total == 25
    assert count_cards(db, batch_id=batch.id) == 25


def test_stalled_batch_offers_resume(app, client, db, world, monkeypatch):
    from portal import db as portal_db

    monkeypatch.setattr(topup_cards, "CHUNK_SIZE", 10)
    with app.app_context():
        session = portal_db.session()
        batch = topup_cards.plan_batch(
            session,
            reseller_id=world["acme"],
            amount_minor=500,
            quantity=30,
            series="78",
            pin_length=8,
            expires_at=utcnow() + timedelta(days=1),
            actor_user_id=None,
        )
        topup_cards._generate_chunk(session, batch.id)
        batch_id = batch.id
    login(client, "a@example.test")
    page = client.get(f"/admin/topup-cards/batches/{batch_id}").get_data(as_text=True)
    assert "Generation stopped" in page and "Resume generation" in page
    client.post(f"/admin/topup-cards/batches/{batch_id}/resume", headers={"HX-Request": "true"})
    for _ in range(100):
        db.rollback()
        if db.get(TopupCardBatch, batch_id).status == BatchStatus.DONE:
            break
        time.sleep(0.05)
    assert count_cards(db, batch_id=batch_id) == 30


# --- table, search, sorting, pagination ------------------------------------------------------


def test_table_shows_seed_columns_masked_pin_and_status_label(app, client, db, world):
    generate(app, reseller_id=world["acme"], quantity=3, series="SER")
    login(client, "op@example.test")
    page = client.get("/admin/topup-cards").get_data(as_text=True)
    for heading in (
        "Status",
        "Serial Number",
        "Amount",
        "PIN Code",
        "Reseller",
        "Activated",
        "Created on",
    ):
        assert f">{heading}" in page
    assert "Advanced Search" in page and "Generate Top-Up Cards" in page and "Mass Edit" in page
    assert "no less than 5" in page
    assert "badge-new" in page and "Reveal" in page and "••••••••" in page
    assert "£10.00" in page


def test_htmx_search_returns_only_results_fragment(app, client, world):
    generate(app, reseller_id=world["acme"], quantity=2, series="FRAG")
    login(client, "op@example.test")
    response = client.get(
        "/admin/topup-cards?series=FRAG",
        headers={"HX-Request": "true", "HX-Target": "card-results"},
    )
    body = response.get_data(as_text=True)
    assert "<html" not in body and 'id="card-results"' in body
    assert body.count("<td>FRAG-") == 2


@pytest.fixture
def searchable(db, world):
    """Cards with distinct attributes, one per filter."""
    now = utcnow()
    account = make_account(db, reseller=db.get(Reseller, world["acme"]))
    cards = {
        "new": add_card(db, reseller_id=world["acme"], serial="AAA-00000001", series="AAA"),
        "activated": add_card(
            db,
            reseller_id=world["acme"],
            serial="BBB-00000001",
            series="BBB",
            amount_minor=5000,
            status=CardStatus.ACTIVATED,
            activated_at=now - timedelta(days=3),
            activated_account_id=account.id,
        ),
        "expired": add_card(
            db,
            reseller_id=world["acme"],
            serial="CCC-00000001",
            series="CCC",
            amount_minor=200,
            expires_at=now - timedelta(days=1),
            created_at=now - timedelta(days=40),
        ),
        "beta": add_card(db, reseller_id=world["beta"], serial="DDD-00000001", series="DDD"),
    }
    db.commit()
    return {key: card.serial for key, card in cards.items()}


def found(client, query: str) -> set[str]:
    body = client.get(f"/admin/topup-cards?{query}").get_data(as_text=True)
    return {
        serial
        for serial in ("AAA-00000001", "BBB-00000001", "CCC-00000001", "DDD-00000001")
        if serial in body
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"new", "activated", "expired", "beta"}),
        ("status=new", {"new", "beta"}),
        ("status=activated", {"activated"}),
        ("status=expired", {"expired"}),
        ("serial=BBB-0", {"activated"}),
        ("series=CCC", {"expired"}),
        ("amount_min=30&amount_max=60", {"activated"}),
        ("amount_max=5", {"expired"}),
        ("reseller={beta}", {"beta"}),
        ("created_to={old}", {"expired"}),
        ("created_from={today}", {"new", "activated", "beta"}),
        ("activated_from={old}&activated_to={today}", {"activated"}),
        ("expires_to={today}", {"expired"}),
        ("expires_from={today}", {"new", "activated", "beta"}),
    ],
)
def test_each_search_filter(client, world, searchable, query, expected):
    today = utcnow().date()
    query = query.format(
        beta=world["beta"], today=today.isoformat(), old=(today - timedelta(days=10)).isoformat()
    )
    login(client, "op@example.test")
    assert found(client, query) == {searchable[key] for key in expected}


def test_reseller_admin_sees_only_own_cards_and_cannot_filter_other_reseller(
    client, world, searchable
):
    login(client, "a@example.test")
    assert "DDD-00000001" not in found(client, "")
    assert found(client, f"reseller={world['beta']}") == set()  # the filter is not offered


@pytest.mark.parametrize(
    "query",
    [
        "amount_min=abc",
        "amount_min=NaN",
        "created_from=2024-13-45",
        "status=bogus",
        "amount_max=1.234",
    ],
)
def test_bad_search_input_gives_message_not_error(client, world, searchable, query):
    login(client, "op@example.test")
    response = client.get(f"/admin/topup-cards?{query}")
    assert response.status_code == 200
    assert "Correct the search" in response.get_data(as_text=True)


def test_sorting_by_each_column(app, db, world):
    operator = db.get(User, world["operator"])
    for i, amount in enumerate([300, 100, 200]):
        add_card(db, reseller_id=world["acme"], serial=f"S{i}-{i}", amount_minor=amount)
    db.commit()
    with app.app_context():
        from portal import db as portal_db

        session = portal_db.session()
        for sort in topup_cards.SORTS:
            for direction in ("asc", "desc"):
                page = topup_cards.search_cards(
                    session,
                    actor=operator,
                    filters=topup_cards.CardFilters(),
                    sort=sort,
                    direction=direction,
                )
                values = [
                    topup_cards._sort_value((r.card, r.reseller_name), sort) for r in page.rows
                ]
                assert values == sorted(values, reverse=direction == "desc"), sort
        amounts = [
            r.card.amount_minor
            for r in topup_cards.search_cards(
                session,
                actor=operator,
                filters=topup_cards.CardFilters(),
                sort="amount",
                direction="asc",
            ).rows
        ]
    assert amounts == [100, 200, 300]


def test_sort_links_via_client(client, db, world):
    for serial in ("Z-1", "A-1", "M-1"):
        add_card(db, reseller_id=world["acme"], serial=serial)
    db.commit()
    login(client, "op@example.test")
    body = client.get("/admin/topup-cards?sort=serial&dir=asc").get_data(as_text=True)
    assert body.index("A-1") < body.index("M-1") < body.index("Z-1")
    body = client.get("/admin/topup-cards?sort=serial&dir=desc").get_data(as_text=True)
    assert body.index("Z-1") < body.index("M-1") < body.index("A-1")


def test_keyset_pagination_walks_all_rows_forward_and_back(app, db, world):
    operator = db.get(User, world["operator"])
    for i in range(120):
        add_card(db, reseller_id=world["acme"], serial=f"P-{i:04d}", amount_minor=100 + i % 7)
    db.commit()
    with app.app_context():
        from portal import db as portal_db

        session = portal_db.session()
        for sort in ("created", "amount", "serial"):
            kw = {
                "actor": operator,
                "filters": topup_cards.CardFilters(),
                "sort": sort,
                "direction": "asc",
            }
            pages = [topup_cards.search_cards(session, **kw)]
            while pages[-1].next_cursor:
                pages.append(topup_cards.search_cards(session, after=pages[-1].next_cursor, **kw))
            assert [len(p.rows) for p in pages] == [50, 50, 20]
            ids = [r.card.id for p in pages for r in p.rows]
            assert len(set(ids)) == 120
            back = topup_cards.search_cards(session, before=pages[2].prev_cursor, **kw)
            assert [r.card.id for r in back.rows] == [r.card.id for r in pages[1].rows]
            assert pages[0].prev_cursor is None


def test_bad_cursor_shows_first_page(client, db, world):
    add_card(db, reseller_id=world["acme"], serial="ONLY-1")
    db.commit()
    login(client, "op@example.test")
    for cursor in ("garbage", "WzEsMl0", "W251bGwsICJ4Il0"):
        response = client.get(f"/admin/topup-cards?after={cursor}&sort=created")
        assert response.status_code == 200
        assert "ONLY-1" in response.get_data(as_text=True)


# --- mass edit and delete ---------------------------------------------------------------------


NEW_EXPIRY = "2031-05-06T07:08"
NEW_EXPIRY_DT = datetime(2031, 5, 6, 7, 8, tzinfo=UTC)


def mass_edit(client, **data):
    form = {"expires_mode": "preserve", "company_mode": "preserve", **data}
    return client.post("/admin/topup-cards/mass-edit", data=form)


def test_mass_edit_sets_expiry_and_preserves_company(client, db, world):
    cards = [add_card(db, reseller_id=world["acme"], series="ME") for _ in range(3)]
    other = add_card(db, reseller_id=world["acme"], series="KEEP")
    db.commit()
    login(client, "op@example.test")
    response = mass_edit(client, series="ME", expires_mode="set", expires_at=NEW_EXPIRY)
    assert "3 cards changed." in response.get_data(as_text=True)
    db.rollback()
    for card in cards:
        db.refresh(card)
        assert card.expires_at == NEW_EXPIRY_DT
        assert card.reseller_id == world["acme"]
    db.refresh(other)
    assert other.expires_at != NEW_EXPIRY_DT
    assert db.scalar(select(AuditLog).where(AuditLog.action == "topup_cards.mass_edit"))


def test_mass_edit_sets_company_and_preserves_expiry(client, db, world):
    card = add_card(db, reseller_id=world["acme"], series="MV")
    expiry = card.expires_at
    db.commit()
    login(client, "op@example.test")
    response = mass_edit(client, series="MV", company_mode="set", company_id=str(world["beta"]))
    assert "1 card changed." in response.get_data(as_text=True)
    db.rollback()
    db.refresh(card)
    assert card.reseller_id == world["beta"]
    assert card.expires_at == expiry


def test_mass_edit_with_both_preserve_changes_nothing(client, db, world):
    card = add_card(db, reseller_id=world["acme"])
    db.commit()
    login(client, "op@example.test")
    body = mass_edit(client).get_data(as_text=True)
    assert "set to" in body and "changed." not in body
    db.rollback()
    db.refresh(card)
    assert card.reseller_id == world["acme"]


def test_mass_edit_scope_is_the_admins_reseller_and_leaves_activated_cards(client, db, world):
    mine = add_card(db, reseller_id=world["acme"])
    used = add_card(
        db, reseller_id=world["acme"], status=CardStatus.ACTIVATED, activated_at=utcnow()
    )
    theirs = add_card(db, reseller_id=world["beta"])
    db.commit()
    login(client, "a@example.test")
    body = mass_edit(client, expires_mode="set", expires_at=NEW_EXPIRY).get_data(as_text=True)
    assert "1 card changed." in body
    db.rollback()
    for card in (mine, used, theirs):
        db.refresh(card)
    assert mine.expires_at == NEW_EXPIRY_DT
    assert used.expires_at != NEW_EXPIRY_DT
    assert theirs.expires_at != NEW_EXPIRY_DT


def test_reseller_admin_cannot_change_company(client, db, world):
    card = add_card(db, reseller_id=world["acme"])
    db.commit()
    login(client, "a@example.test")
    body = mass_edit(client, company_mode="set", company_id=str(world["beta"])).get_data(
        as_text=True
    )
    assert "changed." not in body
    db.rollback()
    db.refresh(card)
    assert card.reseller_id == world["acme"]


def test_mass_edit_selected_rows_only(client, db, world):
    chosen, left = add_card(db, reseller_id=world["acme"]), add_card(db, reseller_id=world["acme"])
    foreign = add_card(db, reseller_id=world["beta"])
    db.commit()
    login(client, "a@example.test")
    body = mass_edit(
        client, card_id=[str(chosen.id), str(foreign.id)], expires_mode="set", expires_at=NEW_EXPIRY
    ).get_data(as_text=True)
    assert "1 card changed." in body
    db.rollback()
    for card in (chosen, left, foreign):
        db.refresh(card)
    assert chosen.expires_at == NEW_EXPIRY_DT
    assert left.expires_at != NEW_EXPIRY_DT and foreign.expires_at != NEW_EXPIRY_DT


@pytest.mark.parametrize(
    "data",
    [
        {"expires_mode": "set", "expires_at": ""},
        {"expires_mode": "set", "expires_at": "31/12/2030"},
        {"expires_mode": "sometimes"},
        {"company_mode": "set", "company_id": "99999"},
        {"card_id": "abc", "expires_mode": "set", "expires_at": NEW_EXPIRY},
    ],
)
def test_bad_mass_edit_input_changes_nothing(client, db, world, data):
    card = add_card(db, reseller_id=world["acme"])
    expiry = card.expires_at
    db.commit()
    login(client, "op@example.test")
    response = mass_edit(client, **data)
    assert response.status_code == 200
    assert "changed." not in response.get_data(as_text=True)
    db.rollback()
    db.refresh(card)
    assert card.expires_at == expiry and card.reseller_id == world["acme"]


def test_delete_all_needs_typed_delete_and_keeps_ledger_entries(app, client, db, world):
    from portal import ledger

    customer = make_customer(db, reseller=db.get(Reseller, world["acme"]))
    used = add_card(
        db,
        reseller_id=world["acme"],
        series="DEL",
        status=CardStatus.ACTIVATED,
        activated_at=utcnow(),
        activated_account_id=customer.account_id,
    )
    used_serial = used.serial
    add_card(db, reseller_id=world["acme"], series="DEL")
    survivor = add_card(db, reseller_id=world["acme"], series="STAY")
    ledger.post_entry(
        db,
        account_id=customer.account_id,
        kind=EntryKind.VOUCHER,
        amount_minor=1000,
        description=f"Voucher {used.serial}",
        reference=used.serial,
        idempotency_key=f"voucher-{used.id}",
    )
    db.commit()
    login(client, "a@example.test")
    body = client.post(
        "/admin/topup-cards/delete", data={"series": "DEL", "confirmation": "delete"}
    )
    assert "Type DELETE to confirm." in body.get_data(as_text=True)
    assert count_cards(db) == 3
    body = client.post(
        "/admin/topup-cards/delete", data={"series": "DEL", "confirmation": "DELETE"}
    )
    assert "2 cards deleted." in body.get_data(as_text=True)
    assert count_cards(db) == 1
    assert db.get(TopupCard, survivor.id) is not None
    entry = db.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.VOUCHER))
    assert entry is not None and entry.reference == used_serial
    assert db.scalar(select(AuditLog).where(AuditLog.action == "topup_cards.delete"))


def test_reseller_admin_delete_all_spares_other_resellers(client, db, world):
    add_card(db, reseller_id=world["acme"])
    add_card(db, reseller_id=world["beta"])
    db.commit()
    login(client, "a@example.test")
    client.post("/admin/topup-cards/delete", data={"confirmation": "DELETE"})
    assert count_cards(db, reseller_id=world["acme"]) == 0
    assert count_cards(db, reseller_id=world["beta"]) == 1


# --- reveal, CSV, isolation ---------------------------------------------------------------------


def test_reveal_shows_pin_and_writes_audit_row(app, client, db, world):
    batch_id = generate(app, reseller_id=world["acme"], quantity=1)
    card = db.scalar(select(TopupCard).where(TopupCard.batch_id == batch_id))
    pin = PinVault("test-pin-key").decrypt(card.pin_encrypted)
    login(client, "a@example.test")
    response = client.post(f"/admin/topup-cards/{card.id}/reveal", headers={"HX-Request": "true"})
    assert pin in response.get_data(as_text=True)
    db.rollback()
    row = db.scalar(select(AuditLog).where(AuditLog.action == "topup_cards.reveal_pin"))
    assert row.object_id == str(card.id) and row.actor_user_id == world["acme_admin"]


def test_foreign_ids_answer_404(app, client, db, world):
    batch_id = generate(app, reseller_id=world["beta"], quantity=1)
    card_id = db.scalar(select(TopupCard.id))
    login(client, "a@example.test")
    assert client.post(f"/admin/topup-cards/{card_id}/reveal").status_code == 404
    assert client.get(f"/admin/topup-cards/batches/{batch_id}").status_code == 404
    assert client.get(f"/admin/topup-cards/batches/{batch_id}/cards.csv").status_code == 404
    assert client.post(f"/admin/topup-cards/batches/{batch_id}/resume").status_code == 404
    assert client.post("/admin/topup-cards/999999/reveal").status_code == 404
    db.rollback()
    assert (
        db.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "topup_cards.reveal_pin")
        )
        == 0
    )


def test_customer_gets_403(client, db, world):
    customer = make_customer(db)
    db.commit()
    login(client, customer.email)
    assert client.get("/admin/topup-cards").status_code == 403
    assert post_generate(client, world["acme"]).status_code == 403


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_batch_csv_has_serial_pin_amount_currency_expiry(app, client, db, world):
    expiry = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    batch_id = generate(
        app, reseller_id=world["acme"], quantity=4, amount_minor=1250, expires_at=expiry
    )
    login(client, "a@example.test")
    response = client.get(f"/admin/topup-cards/batches/{batch_id}/cards.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == ["Serial Number", "PIN Code", "Amount", "Currency", "Expiration date"]
    assert len(rows) == 5
    db.rollback()
    vault = PinVault("test-pin-key")
    hashes = {c.serial: c.pin_hash for c in db.scalars(select(TopupCard))}
    for serial, pin, amount, currency, expires in rows[1:]:
        assert vault.hash(pin) == hashes[serial]
        assert (amount, currency, expires) == ("12.50", "GBP", "2030-01-02 03:04")
    assert db.scalar(select(AuditLog).where(AuditLog.action == "topup_cards.export"))


def test_search_csv_neutralises_formulas(client, db, world):
    from portal.pins import PinVault as Vault

    vault = Vault("test-pin-key")
    for serial in ("=HYPERLINK(1)", "+1", "-2", "@SUM(1)", "SAFE-1"):
        add_card(
            db,
            reseller_id=world["acme"],
            serial=serial,
            series="X",
            pin_encrypted=vault.encrypt("=1+1"),
        )
    db.commit()
    login(client, "op@example.test")
    rows = read_csv(client.get("/admin/topup-cards/export.csv?series=X"))
    cells = {row[0] for row in rows[1:]}
    assert cells == {"'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(1)", "SAFE-1"}
    assert {row[1] for row in rows[1:]} == {"'=1+1"}


def test_csv_of_running_batch_refused(app, client, db, world):
    from portal import db as portal_db

    with app.app_context():
        batch = topup_cards.plan_batch(
            portal_db.session(),
            reseller_id=world["acme"],
            amount_minor=500,
            quantity=5,
            series="RUN",
            pin_length=8,
            expires_at=utcnow() + timedelta(days=1),
            actor_user_id=None,
        )
    login(client, "op@example.test")
    response = client.get(f"/admin/topup-cards/batches/{batch.id}/cards.csv")
    assert response.status_code == 409


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_generation_search_edit_export_on_postgresql(pg_app, pg_db, monkeypatch):
    """The bulk insert, keyset cursors and set-based update also work on PostgreSQL."""
    from portal import db as portal_db

    monkeypatch.setattr(topup_cards, "CHUNK_SIZE", 40)
    reseller = make_reseller(pg_db, name="PG")
    operator = make_user(pg_db, role=Role.OPERATOR)
    pg_db.commit()
    with pg_app.app_context():
        session = portal_db.session()
        batch = topup_cards.generate_cards(
            session,
            reseller_id=reseller.id,
            amount_minor=700,
            quantity=120,
            series="PG1",
            pin_length=8,
            expires_at=utcnow() + timedelta(days=5),
            actor_user_id=operator.id,
        )
        assert batch.status == BatchStatus.DONE
        for sort in topup_cards.SORTS:
            kw = {"actor": operator, "filters": topup_cards.CardFilters(), "sort": sort}
            first = topup_cards.search_cards(session, **kw)
            second = topup_cards.search_cards(session, after=first.next_cursor, **kw)
            third = topup_cards.search_cards(session, after=second.next_cursor, **kw)
            ids = {r.card.id for page in (first, second, third) for r in page.rows}
            assert len(ids) == 120 and third.next_cursor is None, sort
            back = topup_cards.search_cards(session, before=second.prev_cursor, **kw)
            assert [r.card.id for r in back.rows] == [r.card.id for r in first.rows]
        scope = topup_cards.Scope(filters=topup_cards.CardFilters(series="PG1"))
        expiry = datetime(2032, 1, 1, tzinfo=UTC)
        assert topup_cards.mass_edit(session, scope=scope, actor=operator, expires_at=expiry) == 120
        assert topup_cards.mass_edit(session, scope=scope, actor=operator, expires_at=expiry) == 0
        rows = list(
            csv.reader(io.StringIO(topup_cards.export_csv(session, scope=scope, actor=operator)))
        )
    assert len(rows) == 121 and rows[1][4] == "2032-01-01 00:00"
    pg_db.rollback()
    assert pg_db.scalar(select(func.count(func.distinct(TopupCard.pin_hash)))) == 120
