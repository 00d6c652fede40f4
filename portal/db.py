"""Engine and session handling (plain SQLAlchemy 2.0, one session per app context)."""

from __future__ import annotations

from flask import Flask, g, has_request_context, request
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class Base(DeclarativeBase):
    pass


def make_engine(url: str, *, pgbouncer: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL and writer serialisation (see _sqlite_begin).

    pgbouncer: the URL points at PgBouncer in transaction pooling mode, where consecutive
    transactions may run on different server connections: psycopg's server-side prepared
    statements (made after 5 runs of a query) would then be missing, so they are turned off.
    """
    if url.startswith("sqlite"):
        # Pooled (SQLAlchemy's default for file databases): opening a connection and
        # running the PRAGMAs on every request cost ~25% of a page (bench/).
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args = {"prepare_threshold": None} if pgbouncer else {}
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
    )


def _sqlite_connect(dbapi_conn, _record) -> None:
    # Let SQLAlchemy emit BEGIN itself so we can choose IMMEDIATE for writers.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn) -> None:
    # SQLite has no SELECT ... FOR UPDATE. A transaction that may write takes the
    # write lock up front (BEGIN IMMEDIATE), so two writers never read the same
    # balance and then both write; read-only GET requests stay concurrent.
    reading = has_request_context() and request.method not in WRITE_METHODS
    deferred = conn.get_execution_options().get("sqlite_begin") == "deferred"
    conn.exec_driver_sql("BEGIN" if reading or deferred else "BEGIN IMMEDIATE")


def init_app(app: Flask) -> None:
    engine = make_engine(
        app.config["SQLALCHEMY_DATABASE_URI"], pgbouncer=bool(app.config.get("DATABASE_PGBOUNCER"))
    )
    app.extensions["engine"] = engine
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(factory, "after_commit", _after_commit)
    event.listen(factory, "after_rollback", _after_rollback)
    app.extensions["session_factory"] = factory
    app.teardown_request(_close_request_session)
    # Registered before _close_session, so it runs after it (Flask runs them in reverse).
    app.teardown_appcontext(_run_deferred_checks)
    app.teardown_appcontext(_close_session)


def _after_commit(db_session: Session) -> None:
    # Funds changed (portal.ledger.note_funds_changed): run the auto-recharge and warning
    # checks now that the change is visible to other sessions.
    changed = db_session.info.pop("funds_changed", None)
    if not changed:
        return
    from flask import current_app, has_app_context

    if has_app_context():
        from portal.jobs import funds_changed

        funds_changed(current_app._get_current_object(), changed)


def _run_deferred_checks(exc: BaseException | None) -> None:
    from portal.jobs import run_deferred_checks

    run_deferred_checks()


def _after_rollback(db_session: Session) -> None:
    db_session.info.pop("funds_changed", None)


def dialect_insert(db_session: Session, table):
    """INSERT with ON CONFLICT support (PostgreSQL's or SQLite's construct, same API)."""
    if db_session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def get_engine(app: Flask | None = None) -> Engine:
    from flask import current_app

    return (app or current_app).extensions["engine"]


def _holder():
    # One session per request (even if a test or job holds an outer app context),
    # otherwise one per app context (CLI commands, scheduled jobs).
    return request if has_request_context() else g


def session() -> Session:
    """The session of the current request or app context (created on first use)."""
    from flask import current_app

    holder = _holder()
    db_session = getattr(holder, "db_session", None)
    if db_session is None:
        db_session = current_app.extensions["session_factory"]()
        holder.db_session = db_session
    return db_session


def new_session() -> Session:
    """A fresh session outside the request's one (background work, parallel tests)."""
    from flask import current_app

    return current_app.extensions["session_factory"]()


def _close_request_session(exc: BaseException | None) -> None:
    db_session = request.__dict__.pop("db_session", None)
    if db_session is not None:
        db_session.close()  # rolls back anything not committed


def _close_session(exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
