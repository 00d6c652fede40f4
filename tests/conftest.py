"""Shared fixtures: a fresh SQLite database per test, PostgreSQL, localstripe, a live server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

import portal.models  # noqa: F401
from portal import create_app
from portal.db import Base

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

TEST_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret",
    "WTF_CSRF_ENABLED": False,
    "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    "PIN_ENCRYPTION_KEY": "test-pin-key",
    "STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
    "RATELIMIT_ENABLED": True,
    "LOGIN_RATE_LIMIT": "1000 per minute",
    # Admins made by tests/builders.py sign in with a password; the enforced setting (as in
    # production) is proved by tests/auth/test_two_factor.py and the browser tests.
    "TWO_FACTOR_REQUIRED_FOR_ADMINS": False,
    # Checks after a change of funds run in the request's thread: deterministic tests,
    # and no background writer racing a test's own SQLite session.
    "AFTER_DEBIT_CHECKS": "inline",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- SQLite -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """The schema built once; each test gets a copy (much faster than create_all each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


class CheckingSession(Session):
    """A test session whose rollback() always forgets loaded state.

    Session.rollback() is a no-op when no transaction is open, so objects loaded before a
    request would keep their old values and a check could pass on stale data.
    """

    def rollback(self) -> None:
        super().rollback()
        self.expire_all()


def build_app(database_url: str, **overrides):
    return create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url, **overrides})


@pytest.fixture
def app_config() -> dict:
    """Override in a test module to change the app's configuration."""
    return {}


@pytest.fixture
def app(tmp_path, template_db, app_config):
    db_path = tmp_path / "test.db"
    shutil.copy(template_db, db_path)
    application = build_app(f"sqlite:///{db_path}", **app_config)
    yield application
    application.extensions["engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    """A session of our own for arranging and checking state (no app context held).

    Commit what you arrange before making requests; call db.rollback() before checking
    what requests did (it ends the read snapshot and expires the loaded objects).
    On SQLite it begins deferred, so reading here never blocks the app's writers.
    """
    engine = app.extensions["engine"].execution_options(sqlite_begin="deferred")
    session = CheckingSession(bind=engine, expire_on_commit=False)
    yield session
    session.close()


@pytest.fixture
def demo(app):
    """The demo data seeded into this test's database."""
    from portal.demo import seed_demo

    with app.app_context():
        from portal import db as portal_db

        seed_demo(portal_db.session())


# --- PostgreSQL -----------------------------------------------------------------------


def _pg_base_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return PG_DEFAULT_URL
    except OSError:
        return None


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    url = _pg_base_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests but no server answers")
        pytest.skip("PostgreSQL not available: set TEST_DATABASE_URL or run a server on 5432")
    return url


@pytest.fixture
def pg_url(pg_base_url):
    """A private schema on the PostgreSQL server for this test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_base_url else "?"
    # Durability is not under test here; skipping the fsync per commit saves minutes.
    url = f"{pg_base_url}{sep}options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def pg_app(pg_url, app_config):
    application = build_app(pg_url, **app_config)
    yield application
    application.extensions["engine"].dispose()


@pytest.fixture
def pg_db(pg_app):
    session = CheckingSession(bind=pg_app.extensions["engine"], expire_on_commit=False)
    yield session
    session.close()


# --- localstripe ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def localstripe_url():
    """A localstripe of our own on a free loopback port, for the whole test session."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal.localstripe_server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/js.stripe.com/v3/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("localstripe did not start")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def stripe_config(localstripe_url) -> dict:
    """App configuration pointing at the test session's localstripe (data wiped first)."""
    request = urllib.request.Request(f"{localstripe_url}/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=5)
    return {
        "STRIPE_API_BASE": localstripe_url,
        "STRIPE_JS_URL": f"{localstripe_url}/js.stripe.com/v3/",
    }


# --- Live server and browser ----------------------------------------------------------


class LiveServer:
    def __init__(self, app):
        from werkzeug.serving import make_server

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture
def live_server(app):
    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's chromium or set CHROMIUM")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }
