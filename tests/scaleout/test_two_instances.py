"""Scale-out: two gunicorn instances share PostgreSQL and Redis; two schedulers charge once.

The instances run exactly as in production (portal/gunicorn_conf.py, CSRF on), each on its
own loopback port, against the test's PostgreSQL schema and a Redis database of our own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.common import Browser
from portal import create_app
from portal.ledger import post_entry
from portal.models import (
    Account,
    AutoRechargeSetting,
    CardStatus,
    EntryKind,
    LedgerEntry,
    Payment,
    RedeemFailure,
    TopupCard,
)
from portal.pins import PinVault
from tests.builders import PASSWORD, make_account, make_reseller, make_user

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 13  # our own database number on the Redis server, flushed before each test
SECRET = "scaleout-secret-key-" + "s" * 32
PIN_KEY = "scaleout-pin-key"
LOGIN_LIMIT = 5  # sign-in POSTs per minute per client address


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_url() -> str:
    """redis://127.0.0.1:6379/13, flushed; skipped when no Redis answers (failed in CI)."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_DB}")
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the scale-out tests but Redis does not answer: {exc}")
        pytest.skip(f"Redis does not answer at {url}: {exc}")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def _env(pg_url: str, redis_url: str, **extra) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET,
        "PIN_ENCRYPTION_KEY": PIN_KEY,
        "LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT} per minute",
        "ACCESS_LOG": "0",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


@contextlib.contextmanager
def gunicorn(env: dict):
    """One production-style instance (one worker, two threads) on a free loopback port."""
    port = _free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - a file, not a pipe: a full pipe stalls
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-c",
            str(ROOT / "portal" / "gunicorn_conf.py"),
            "app:app",
        ],
        cwd=ROOT,
        env={**env, "PORT": str(port), "WEB_WORKERS": "1", "WEB_THREADS": "2"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    log.seek(0)
                    pytest.fail(f"gunicorn did not start: {log.read().decode()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def instances(pg_url, redis_url):
    """Two app instances sharing the test's PostgreSQL schema and Redis database."""
    env = _env(pg_url, redis_url)
    with gunicorn(env) as first, gunicorn(env) as second:
        yield first, second


def _customer(pg_db, email: str, reseller=None):
    reseller = reseller or make_reseller(pg_db)
    account = make_account(pg_db, reseller=reseller)
    return make_user(pg_db, account=account, email=email)


def _card(pg_db, reseller_id: int, pin: str) -> TopupCard:
    vault = PinVault(PIN_KEY)
    card = TopupCard(
        reseller_id=reseller_id,
        serial="SO-00000001",
        series="SO",
        amount_minor=2000,
        currency="GBP",
        pin_hash=vault.hash(pin),
        pin_encrypted=vault.encrypt(pin),
        pin_length=len(pin),
    )
    pg_db.add(card)
    pg_db.flush()
    return card


@pytest.fixture
def signed_in():
    """Sign a customer in on an instance from a loopback address; closed after the test."""
    opened: list[Browser] = []

    def open_one(url: str, email: str, source: str) -> Browser:
        browser = Browser(url, source=source)
        opened.append(browser)
        browser.sign_in(email, PASSWORD)
        status, _ = browser.request("GET", "/billing/redeem")
        assert status == 200
        return browser

    yield open_one
    for browser in opened:
        browser.close()


def test_pin_lockout_reached_on_one_instance_holds_on_the_other(instances, pg_db, signed_in):
    _signed_in = signed_in
    first, second = instances
    user = _customer(pg_db, "locked@example.test")
    neighbour = _customer(pg_db, "neighbour@example.test", reseller=user.account.reseller)
    card = _card(pg_db, user.account.reseller_id, "73190455821")
    pg_db.commit()

    on_first = _signed_in(first, user.email, "127.0.0.21")
    for _ in range(5):
        status, body = on_first.request("POST", "/billing/redeem", {"pin": "00000000000"})
        assert status == 422, body[:500]

    # The same user on the other instance (another session): locked, even with a valid PIN.
    on_second = _signed_in(second, user.email, "127.0.0.22")
    status, body = on_second.request("POST", "/billing/redeem", {"pin": "73190455821"})
    assert status == 429
    assert "Too many wrong PINs" in body
    # Another user from the locked address, on the other instance: locked too.
    neighbour_second = _signed_in(second, neighbour.email, "127.0.0.21")
    status, _ = neighbour_second.request("POST", "/billing/redeem", {"pin": "73190455821"})
    assert status == 429

    pg_db.rollback()
    assert pg_db.get(TopupCard, card.id).status == CardStatus.NEW
    assert pg_db.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    assert pg_db.scalar(select(func.count()).select_from(RedeemFailure)) == 5
    # A different user from a different address still redeems, through either instance.
    other = _customer(pg_db, "fresh@example.test", reseller=user.account.reseller)
    pg_db.commit()
    status, _ = _signed_in(first, other.email, "127.0.0.23").request(
        "POST", "/billing/redeem", {"pin": "73190455821"}
    )
    assert status == 303
    pg_db.rollback()
    assert pg_db.get(Account, other.account_id).balance_minor == 2000


def _login_post(url: str, source: str, n: int) -> int:
    browser = Browser(url, source=source)
    try:
        browser.request("GET", "/login")
        status, _ = browser.request(
            "POST", "/login", {"email": f"nobody{n}@example.test", "password": "wrong"}
        )
    finally:
        browser.close()
    return status


def test_login_rate_limit_is_shared_through_redis(instances, redis_url):
    import redis

    first, second = instances
    address = "127.0.0.31"
    # LOGIN_LIMIT sign-in attempts from one address, alternating instances: all answered.
    answers = [_login_post((first, second)[n % 2], address, n) for n in range(LOGIN_LIMIT)]
    assert answers == [200] * LOGIN_LIMIT
    # The next one is refused on both instances: the counter lives in Redis, not per process.
    assert _login_post(first, address, 100) == 429
    assert _login_post(second, address, 101) == 429
    # Another address is not limited.
    assert _login_post(second, "127.0.0.32", 102) == 200
    keys = redis.Redis.from_url(redis_url).keys("*")
    assert any(b"127.0.0.31" in key for key in keys), keys


def test_the_app_uses_redis_for_rate_limits_when_redis_url_is_set(monkeypatch, redis_url):
    from portal.extensions import limiter

    monkeypatch.setenv("REDIS_URL", redis_url)
    app = create_app({"SECRET_KEY": "x" * 40, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["RATELIMIT_STORAGE_URI"] == redis_url
    assert type(limiter.storage).__name__ == "RedisStorage"
    assert limiter.storage.check()
    app.extensions["engine"].dispose()


# --- Two schedulers --------------------------------------------------------------------


def _stripe_list(localstripe_url: str, what: str) -> list[dict]:
    request = urllib.request.Request(
        f"{localstripe_url}/v1/{what}?limit=100",
        headers={"Authorization": "Bearer sk_test_localstripe"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def _low_account_with_card(pg_url: str, stripe_config: dict) -> int:
    """An account at 3.00 with auto-recharge at 5.00 (+20.00) and a good card in localstripe."""
    from portal import db as portal_db
    from portal.payments import gateway, service

    app = create_app(
        {
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": pg_url,
            "AFTER_DEBIT_CHECKS": "off",
            **stripe_config,
        }
    )
    with app.app_context():
        session = portal_db.new_session()
        account = make_account(session, reseller=make_reseller(session), email="ar@example.test")
        post_entry(
            session,
            account_id=account.id,
            kind=EntryKind.TOPUP,
            amount_minor=300,
            description="Opening",
            idempotency_key="open",
        )
        session.add(
            AutoRechargeSetting(
                account_id=account.id,
                enabled=True,
                threshold_minor=500,
                amount_minor=2000,
                failure_count=0,
            )
        )
        session.commit()
        customer_id = gateway.ensure_customer(session, account)
        info = gateway.create_test_card(customer_id, "4242424242424242")
        service.link_card(session, account=account, info=info)
        account_id = account.id
        session.close()
    app.extensions["engine"].dispose()
    return account_id


def test_two_schedulers_charge_an_auto_recharge_once(pg_url, pg_db, redis_url, stripe_config):
    account_id = _low_account_with_card(pg_url, stripe_config)
    env = _env(
        pg_url,
        redis_url,
        STRIPE_API_BASE=stripe_config["STRIPE_API_BASE"],
        FLASK_APP="app",
    )
    flask = str(Path(sys.executable).with_name("flask"))
    runners = [
        subprocess.Popen(
            [flask, "scheduler", "--once"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [runner.communicate(timeout=120) for runner in runners]
    for runner, (out, err) in zip(runners, outputs, strict=True):
        assert runner.returncode == 0, err[-2000:]
        assert "auto_recharge_sweep:" in out

    intents = _stripe_list(stripe_config["STRIPE_API_BASE"], "payment_intents")
    assert len(intents) == 1
    assert intents[0]["amount"] == 2000
    pg_db.rollback()
    credits = pg_db.scalars(
        select(LedgerEntry).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.AUTO_RECHARGE
        )
    ).all()
    assert [entry.amount_minor for entry in credits] == [2000]
    assert pg_db.get(Account, account_id).balance_minor == 2300
    assert pg_db.scalar(select(func.count()).select_from(Payment)) == 1
