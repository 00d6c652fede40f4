"""The sign-in holes of issue 13, each proved closed: open redirect through `next`, which
emails have accounts, and anybody locking a known account out.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import func, select

from portal.auth import service
from portal.auth.routes import safe_next
from portal.models import AuditLog, OutboxEmail, SignInFailure, utcnow
from tests.builders import PASSWORD, make_account, make_reseller, make_user

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"


@pytest.fixture
def alice(db):
    user = make_user(db, account=make_account(db, reseller=make_reseller(db)), email="alice@t.test")
    db.commit()
    return user


def attempt(client, email, password="wrong-password", ip=ATTACKER, next_=None):
    url = "/login" if next_ is None else f"/login?next={quote(next_, safe='')}"
    return client.post(
        url, data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def alert(response) -> str:
    html = response.get_data(as_text=True)
    start = html.index('role="alert">') + len('role="alert">')
    return html[start : html.index("</div>", start)]


# --- Open redirect -----------------------------------------------------------------------------

HOSTILE_NEXT = [
    "/\t/evil.example",  # the reported one: GET /login?next=%2F%09%2Fevil.example
    "/\n/evil.example",
    "/\r\n/evil.example/x",
    " //evil.example",
    "\x00//evil.example",
    "/\x0b/evil.example",
    "/\u3000/evil.example",
    "/\u200b/evil.example",
    "\t/\\evil.example",
    "//evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
]


def browser_view(location: str) -> str:
    """What a browser makes of a Location: tabs/newlines dropped, outer controls stripped."""
    cleaned = "".join(ch for ch in location if ch not in "\t\n\r")
    return cleaned.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f \u3000")


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_next_never_sends_the_browser_to_another_site(client, alice, target):
    response = attempt(client, "alice@t.test", PASSWORD, next_=target)
    assert response.status_code == 302
    location = browser_view(response.headers["Location"])
    assert urlsplit(location).netloc == "" and urlsplit(location).scheme == ""
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert location == "/billing/balance"


def test_the_reported_url_signs_in_to_the_home_page(client, alice):
    response = client.post(
        "/login?next=%2F%09%2Fevil.example",
        data={"email": "alice@t.test", "password": PASSWORD},
    )
    assert response.headers["Location"] == "/billing/balance"


def test_a_same_site_path_is_kept():
    assert safe_next("/billing/invoices?page=2") == "/billing/invoices?page=2"
    assert safe_next("/billing/\tinvoices") == "/billing/invoices"  # normalised, same site
    assert safe_next("") is None and safe_next(None) is None


# --- Which emails have accounts ---------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"PASSWORD_HASH_METHOD": "scrypt"}])
def test_known_and_unknown_emails_cost_the_same_hashing_work(app, client, db, monkeypatch):
    with app.app_context():
        user = make_user(db, email="known@t.test")
        user.password_hash = service.hash_password("x" * 12)
    db.commit()
    checked = []
    real_check = service.check_password_hash

    def recording_check(pwhash, password):
        checked.append(pwhash.split("$", 1)[0])  # method and its parameters, no salt/hash
        return real_check(pwhash, password)

    monkeypatch.setattr(service, "check_password_hash", recording_check)
    attempt(client, "known@t.test")
    known = list(checked)
    checked.clear()
    attempt(client, "unknown@t.test")
    unknown = list(checked)
    assert known == [user.password_hash.split("$", 1)[0]]
    assert known[0].startswith("scrypt:")
    assert unknown == known  # one hash of the same method, cost and parameters


@pytest.mark.parametrize("failures", [1, 5, 6, 7])
def test_known_and_unknown_emails_get_the_same_answers(client, alice, failures):
    answers = {}
    for email in ("alice@t.test", "nobody@t.test"):
        for _ in range(failures):
            response = attempt(client, email)
        answers[email] = (
            response.status_code,
            response.headers.get("Retry-After") is not None,
            alert(response),
        )
    assert answers["alice@t.test"] == answers["nobody@t.test"]


def test_a_locked_pair_answers_the_same_for_the_right_and_a_wrong_password(client, alice):
    for _ in range(5):
        attempt(client, "alice@t.test")
    right, wrong = attempt(client, "alice@t.test", PASSWORD), attempt(client, "alice@t.test")
    assert right.status_code == wrong.status_code == 429
    assert alert(right) == alert(wrong)


def test_an_inactive_account_answers_like_a_wrong_password(client, db, alice):
    alice.active = False
    db.commit()
    response = attempt(client, "alice@t.test", PASSWORD)
    assert response.status_code == 200
    assert alert(response) == "Wrong email or password."


# --- Nobody can lock the owner out ------------------------------------------------------------


def test_failures_from_one_address_refuse_that_address_only(client, app, alice):
    for _ in range(5):
        assert attempt(client, "alice@t.test").status_code == 200
    refused = attempt(client, "alice@t.test", PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in alert(refused)
    # The owner, from their own address, is not affected.
    assert attempt(app.test_client(), "alice@t.test", PASSWORD, ip=OWNER).status_code == 302


def test_a_distributed_attack_slows_new_browsers_but_not_the_owners(app, db, alice):
    owner = app.test_client()
    assert attempt(owner, "alice@t.test", PASSWORD, ip=OWNER).status_code == 302
    owner.post("/logout")
    for n in range(service.ACCOUNT_FREE + 2):  # one try from each of many addresses
        attempt(app.test_client(), "alice@t.test", ip=f"203.0.113.{n + 1}")
    stranger = attempt(app.test_client(), "alice@t.test", PASSWORD, ip="192.0.2.1")
    assert stranger.status_code == 429  # a new browser waits the growing delay
    assert int(stranger.headers["Retry-After"]) > 0
    # The owner's browser signed in before: the delay does not apply to it.
    assert attempt(owner, "alice@t.test", PASSWORD, ip="192.0.2.2").status_code == 302
    # And the unknown email behaves like the known one.
    for n in range(service.ACCOUNT_FREE + 2):
        attempt(app.test_client(), "nobody@t.test", ip=f"203.0.113.{n + 1}")
    ghost = attempt(app.test_client(), "nobody@t.test", PASSWORD, ip="192.0.2.1")
    assert (ghost.status_code, alert(ghost)) == (stranger.status_code, alert(stranger))


def test_the_delay_grows_and_is_capped():
    assert service.delay_after(service.ACCOUNT_FREE - 1) == 0
    delays = [service.delay_after(service.ACCOUNT_FREE + n) for n in range(12)]
    assert delays[0] == service.FIRST_DELAY
    assert all(b == min(2 * a, service.MAX_DELAY) for a, b in zip(delays, delays[1:]))
    assert delays[-1] == service.MAX_DELAY


def test_the_owner_is_emailed_once_about_repeated_failures(app, db, alice):
    for n in range(service.ACCOUNT_FREE + 3):
        attempt(app.test_client(), "alice@t.test", ip=f"203.0.113.{n + 1}")
    db.rollback()
    mails = db.scalars(select(OutboxEmail).where(OutboxEmail.to_address == "alice@t.test")).all()
    assert [m.subject for m in mails] == ["Repeated failed sign-ins to your account"]
    assert "wrong-password" not in mails[0].body


def test_a_good_sign_in_clears_the_failures_and_is_audited(client, db, alice):
    for _ in range(3):
        attempt(client, "alice@t.test")
    assert attempt(client, "alice@t.test", PASSWORD).status_code == 302
    db.rollback()
    assert db.scalar(select(func.count()).select_from(SignInFailure)) == 0
    actions = db.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == ["auth.sign_in_failed"] * 3 + ["auth.sign_in"]
    stored = " ".join(f"{row.before} {row.after}" for row in db.scalars(select(AuditLog)).all())
    assert PASSWORD not in stored and "wrong-password" not in stored


def test_failures_older_than_every_window_are_pruned(client, db, alice):
    db.add(
        SignInFailure(email_key="x" * 64, ip="192.0.2.9", created_at=utcnow() - timedelta(hours=2))
    )
    db.commit()
    attempt(client, "alice@t.test")
    db.rollback()
    assert db.scalars(select(SignInFailure.ip)).all() == [ATTACKER]
