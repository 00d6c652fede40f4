"""The production path: two gunicorn instances -> PgBouncer (transaction pooling) -> PostgreSQL,
Redis for the shared limits. The concurrency guarantees of the switch's charges hold through
it: twins of one key answered once and identically, no overdraft, nothing lost or doubled.

PgBouncer is Debian's package (`apt-get install pgbouncer`, .ci/run installs it); the test
skips with the reason when the binary is missing (and fails in CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from portal import api_tokens
from portal.db import Base
from portal.ledger import audit_balances, post_entry
from portal.models import ApiCharge, CardCode, CardCodeCharge, EntryKind, LedgerEntry
from tests.builders import make_account, make_reseller
from tests.scaleout.test_two_instances import _env, _free_port, gunicorn, redis_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FUNDS = 50  # minor units per account: 16 charges of 0.03-0.07 each run it out
ACCOUNTS = ("810001", "810002", "810003")
CARD = "88000001"
CARD_CREDIT = 500


def _pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if found is None:
        reason = "PgBouncer is not installed (apt-get install pgbouncer; CI installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture
def database(pg_base_url):
    """A database of our own (PgBouncer forwards no search_path option, so no schema)."""
    name = f"bouncer_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    direct = make_url(pg_base_url).set(database=name)
    engine = create_engine(direct)
    Base.metadata.create_all(engine)
    engine.dispose()
    yield direct
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextlib.contextmanager
def pgbouncer(direct):
    """PgBouncer in transaction pooling with 3 server connections for every client."""
    binary = _pgbouncer_binary()
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o777)  # PgBouncer refuses to run as root: it switches to postgres (-u)
    user = direct.username or "postgres"
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
portal = host={direct.host or "127.0.0.1"} port={direct.port or 5432} dbname={direct.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 3
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    for path in folder.iterdir():
        path.chmod(0o666)
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)  # noqa: S603
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (
                    (folder / "pgbouncer.log").read_text()
                    if (folder / "pgbouncer.log").exists()
                    else ""
                )
                errors.seek(0)
                pytest.fail(f"PgBouncer did not start: {errors.read().decode()} {log[-2000:]}")
            time.sleep(0.1)
        yield direct.set(host="127.0.0.1", port=port, database="portal")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        errors.close()
        shutil.rmtree(folder, ignore_errors=True)


def _arrange(direct) -> str:
    engine = create_engine(direct)
    with Session(engine, expire_on_commit=False) as db:
        reseller = make_reseller(db)
        for number in ACCOUNTS:
            account = make_account(db, reseller=reseller, number=number)
            post_entry(
                db,
                account_id=account.id,
                kind=EntryKind.TOPUP,
                amount_minor=FUNDS,
                description="Opening",
                idempotency_key="open",
            )
        db.add(
            CardCode(
                reseller_id=reseller.id,
                account_id=account.id,
                code=CARD,
                unlimited=False,
                credit_minor=CARD_CREDIT,
                currency="GBP",
            )
        )
        token = api_tokens.create_token(db, reseller_id=reseller.id, name="switch")
        db.commit()
    engine.dispose()
    return token.plaintext


def _post(url: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_parallel_charges_through_pgbouncer_move_money_exactly_once(database, redis_url):  # noqa: F811
    token = _arrange(database)
    with pgbouncer(database) as bounced:
        env = _env(
            bounced.render_as_string(hide_password=False),
            redis_url,
            DATABASE_PGBOUNCER="1",
            WEB_THREADS="4",
        )
        with gunicorn(env) as first, gunicorn(env) as second:
            answers: dict[str, list] = defaultdict(list)
            lock = threading.Lock()

            def worker(n: int):
                # Each key is sent twice, once to each instance, at about the same time.
                for i in range(12):
                    key = f"w{n // 2}-{i}"
                    base = first if n % 2 == 0 else second
                    if i % 3 == 2:
                        url = f"{base}/api/v1/card-codes/{CARD}/charges"
                        amount = "0.40"
                    else:
                        url = f"{base}/api/v1/accounts/{ACCOUNTS[i % len(ACCOUNTS)]}/charges"
                        amount = f"0.{(n // 2) % 5 + 3:02d}"
                    status, body = _post(
                        url,
                        token,
                        {"amount": amount, "description": "Call", "idempotency_key": key},
                    )
                    with lock:
                        answers[(url.rsplit("/", 1)[0].split("/api/v1/")[1], key)].append(
                            (status, body)
                        )

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    statuses = [status for pair in answers.values() for status, _ in pair]
    assert set(statuses) <= {201, 402}, statuses
    assert statuses.count(201) > 0 and statuses.count(402) > 0  # funds ran out on the way
    for (_path, _key), pair in answers.items():
        assert len(pair) == 2 and pair[0] == pair[1], pair  # twins: one answer, the first one

    engine = create_engine(database)
    with Session(engine) as db:
        assert audit_balances(db) == []
        for number in ACCOUNTS:
            debited = sum(
                int(body["amount"].replace(".", ""))
                for (path, _key), pair in answers.items()
                if path == f"accounts/{number}" and pair[0][0] == 201
                for body in [pair[0][1]]
            )
            balance, entries = db.execute(
                text(
                    "SELECT a.balance_minor, (SELECT count(*) FROM ledger_entries e "
                    "WHERE e.account_id = a.id AND e.kind = 'usage') FROM accounts a "
                    "WHERE a.number = :n"
                ),
                {"n": number},
            ).one()
            ok = sum(
                1
                for (path, _key), pair in answers.items()
                if path == f"accounts/{number}" and pair[0][0] == 201
            )
            assert balance == FUNDS - debited >= 0
            assert entries == ok
        stored = db.scalar(select(func.count()).select_from(ApiCharge))
        assert stored == sum(1 for (path, _k) in answers if path.startswith("accounts/"))
        assert db.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == EntryKind.USAGE)
        ) == sum(
            1
            for (p, _k), pair in answers.items()
            if p.startswith("accounts/") and pair[0][0] == 201
        )
        card_ok = sum(
            1
            for (p, _k), pair in answers.items()
            if p.startswith("card-codes/") and pair[0][0] == 201
        )
        left = db.scalar(select(CardCode.credit_minor).where(CardCode.code == CARD))
        assert left == CARD_CREDIT - 40 * card_ok >= 0
        assert card_ok == CARD_CREDIT // 40  # the credit ran out exactly
        assert (
            db.scalar(
                select(func.count())
                .select_from(CardCodeCharge)
                .where(CardCodeCharge.status_code == 201)
            )
            == card_ok
        )
    engine.dispose()
