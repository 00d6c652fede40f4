"""The database goes away for a moment: a friendly 503, nothing half-written, then recovery."""

import pytest
from sqlalchemy import func, select

from portal.models import SignInFailure
from tests.builders import login, make_account, make_reseller, make_user
from tests.conftest import build_app
from tests.reliability.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied(pg_url, pg_db):
    """The app talks to PostgreSQL through a proxy the test can cut."""
    make_user(pg_db, account=make_account(pg_db, reseller=make_reseller(pg_db)), email="o@t.test")
    pg_db.commit()
    proxy = TcpProxy(5432).start()
    app = build_app(pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
    yield app, proxy
    proxy.stop()
    app.extensions["engine"].dispose()


def test_outage_gives_friendly_503_then_service_resumes(proxied):
    app, proxy = proxied
    client = app.test_client()
    assert login(client, "o@t.test").status_code == 302
    assert client.get("/billing/balance").status_code == 200

    proxy.stop()
    response = client.get("/billing/balance")
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "Temporarily unavailable" in html
    assert "Traceback" not in html and "psycopg" not in html

    proxy.start()
    assert client.get("/billing/balance").status_code == 200  # no restart needed


def test_write_during_outage_leaves_nothing_half_written(proxied, pg_db):
    app, proxy = proxied
    client = app.test_client()
    proxy.stop()
    response = login(client, "o@t.test", "wrong-password")  # would count a failed sign-in
    assert response.status_code == 503
    proxy.start()
    pg_db.rollback()
    assert pg_db.scalar(select(func.count()).select_from(SignInFailure)) == 0
    assert login(client, "o@t.test").status_code == 302
