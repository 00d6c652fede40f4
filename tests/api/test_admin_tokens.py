"""Admin page for API tokens: create (shown once), list, revoke; tenant-scoped. The CLI."""

from __future__ import annotations

from sqlalchemy import select

from portal.models import ApiToken, AuditLog, LedgerEntry, Role
from tests.builders import login, make_account, make_reseller, make_user


def admin_of(db, reseller, role=Role.RESELLER_ADMIN):
    return make_user(db, role=role, reseller=reseller if role == Role.RESELLER_ADMIN else None)


def test_create_shows_the_token_once_and_stores_only_its_hash(client, db):
    reseller = make_reseller(db)
    admin = admin_of(db, reseller)
    db.commit()
    login(client, admin.email)
    response = client.post("/admin/api-tokens", data={"name": "Main switch"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    db.rollback()
    token = db.scalar(select(ApiToken))
    assert token.reseller_id == reseller.id and token.name == "Main switch"
    start = html.index('value="vbp_') + len('value="')
    plaintext = html[start : html.index('"', start)]
    assert plaintext.startswith(token.prefix) and token.token_hash != plaintext
    assert plaintext not in client.get("/admin/api-tokens").get_data(as_text=True)
    audited = select(AuditLog.action).where(~AuditLog.action.startswith("auth."))
    assert db.scalars(audited).all() == ["api_token.create"]
    # The new token works on the API.
    make_account(db, reseller=reseller, number="777001")
    db.commit()
    auth = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/v1/accounts/777001/balance", headers=auth).status_code == 200


def test_bad_name_is_refused_inline(client, db):
    admin = admin_of(db, make_reseller(db))
    db.commit()
    login(client, admin.email)
    response = client.post("/admin/api-tokens", data={"name": ""})
    assert response.status_code == 422
    htmx = client.post(
        "/admin/api-tokens", data={"name": "x" * 121}, headers={"HX-Request": "true"}
    )
    assert htmx.status_code == 200 and "field-error" in htmx.get_data(as_text=True)
    db.rollback()
    assert db.scalar(select(ApiToken)) is None


def test_revoke_and_tenant_scope(client, db):
    from portal import api_tokens

    mine, theirs = make_reseller(db), make_reseller(db)
    own = api_tokens.create_token(db, reseller_id=mine.id, name="own")
    other = api_tokens.create_token(db, reseller_id=theirs.id, name="other-tenant")
    admin = admin_of(db, mine)
    db.commit()
    login(client, admin.email)
    page = client.get("/admin/api-tokens").get_data(as_text=True)
    assert "own" in page and "other-tenant" not in page
    assert client.post(f"/admin/api-tokens/{other.token.id}/revoke").status_code == 404
    assert client.post(f"/admin/api-tokens/{own.token.id}/revoke").status_code == 303
    db.rollback()
    db.expire_all()
    assert db.get(ApiToken, own.token.id).revoked_at is not None
    assert db.get(ApiToken, other.token.id).revoked_at is None
    auth = {"Authorization": f"Bearer {own.plaintext}"}
    assert client.get("/api/v1/accounts/1/balance", headers=auth).status_code == 401


def test_operator_can_create_an_all_resellers_token(client, db):
    reseller = make_reseller(db)
    operator = admin_of(db, None, role=Role.OPERATOR)
    db.commit()
    login(client, operator.email)
    assert client.post("/admin/api-tokens", data={"name": "ops", "reseller": ""}).status_code == 200
    assert (
        client.post(
            "/admin/api-tokens", data={"name": "r", "reseller": str(reseller.id)}
        ).status_code
        == 200
    )
    assert (
        client.post("/admin/api-tokens", data={"name": "bad", "reseller": "99999"}).status_code
        == 422
    )
    db.rollback()
    assert sorted((t.name, t.reseller_id) for t in db.scalars(select(ApiToken))) == [
        ("ops", None),
        ("r", reseller.id),
    ]


def test_customers_cannot_manage_tokens(client, db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)))
    db.commit()
    login(client, user.email)
    assert client.get("/admin/api-tokens").status_code == 403


def test_simulate_usage_cli_debits_through_the_api_domain(app, db):
    account = make_account(db, reseller=make_reseller(db), number="100001")
    from portal.ledger import post_entry
    from portal.models import EntryKind

    post_entry(
        db,
        account_id=account.id,
        kind=EntryKind.TOPUP,
        amount_minor=100000,
        description="Opening",
        idempotency_key="o",
    )
    db.commit()
    result = app.test_cli_runner().invoke(
        args=["simulate-usage", "--count", "5", "--accounts", "100001", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "5 of 5 charges debited" in result.output
    db.rollback()
    usage = db.scalars(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.USAGE)).all()
    assert len(usage) == 5 and all(e.amount_minor < 0 for e in usage)
    bad = app.test_cli_runner().invoke(args=["simulate-usage", "--accounts", "nope"])
    assert bad.exit_code != 0 and "No such account" in bad.output
