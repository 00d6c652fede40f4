"""Scheduled jobs: one runner at a time through a database lease, each job idempotent itself.

Every job is a module-level function taking (db, now); `run_job(name)` wraps it with an app
context, a fresh session and the lease. Tests call run_job(name, app=app, now=...).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta

from flask import Flask, current_app, g
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import db as portal_db
from portal.models import (
    Account,
    AccountStatus,
    CardStatus,
    FundsCheck,
    JobLease,
    TopupCard,
    utcnow,
)

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(minutes=15)
BATCH = 500


# --- The jobs ------------------------------------------------------------------------------


def sweep_auto_recharge(db: Session, now: datetime) -> int:
    """Safety net: the queued after-debit checks a crash left behind (funds_checks), then
    charge every enabled account at or below its threshold."""
    from portal.autorecharge import sweep

    drained = drain_funds_checks(current_app._get_current_object(), db, now=now)
    return drained + sweep(db, now=now)


def revert_credit_limits(db: Session, now: datetime) -> int:
    """Temporary credit limit increases past Valid Until go back to the permanent limit."""
    from portal.credit import revert_expired_increases

    count = revert_expired_increases(db, now)
    db.commit()
    return count


def expire_reserve_credit(db: Session, now: datetime) -> int:
    """The remainder of reserve credit grants past their expiry expires (recorded)."""
    from portal.ledger import expire_reserve

    count = expire_reserve(db, now)
    db.commit()
    return count


def expire_topup_cards(db: Session, now: datetime) -> int:
    """New (never activated) top-up cards past their expiry become expired: one UPDATE."""
    result = db.execute(
        update(TopupCard)
        .where(TopupCard.status == CardStatus.NEW, TopupCard.expires_at <= now)
        .values(status=CardStatus.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    return result.rowcount or 0


def check_warnings(db: Session, now: datetime) -> int:
    """Low funds / credit limit warnings for every active account (once per crossing)."""
    from portal.notifications import check_funds_warnings

    sent = 0
    for account_id in _active_account_ids(db):
        sent += check_funds_warnings(db, account_id=account_id, now=now)
        db.commit()
    return sent


def run_billing_cycle(db: Session, now: datetime) -> int:
    """Take each started period's fee and issue (and send) its invoice, once."""
    from portal.invoices import generate_due_invoices

    return len(generate_due_invoices(db, now=now))


def collect_invoices(db: Session, now: datetime) -> int:
    """Mark unpaid invoices overdue after their due date and send the reminders."""
    from portal.invoices import collect_overdue

    return collect_overdue(db, now=now)


def send_emails(db: Session, now: datetime) -> int:
    """Send what waits in the email outbox (retries with back-off)."""
    from portal.notifications import send_outbox

    return send_outbox(db, config=current_app.config, now=now)


def reconcile_payments(db: Session, now: datetime) -> int:
    """Ask Stripe about payments left pending (a crash or a lost webhook)."""
    service = _optional("portal.payments.service")
    if service is None or not hasattr(service, "reconcile_pending_payments"):
        return 0
    result = service.reconcile_pending_payments(db, older_than=timedelta(minutes=10))
    db.commit()
    return result if isinstance(result, int) else len(result or [])


# name -> (function, interval in seconds)
JOBS: dict[str, tuple[Callable[[Session, datetime], int], int]] = {
    "auto_recharge_sweep": (sweep_auto_recharge, 300),
    "credit_limit_revert": (revert_credit_limits, 60),
    "reserve_credit_expiry": (expire_reserve_credit, 600),
    "topup_card_expiry": (expire_topup_cards, 600),
    "funds_warnings": (check_warnings, 300),
    "billing_cycle": (run_billing_cycle, 3600),
    "invoice_collection": (collect_invoices, 3600),
    "email_outbox": (send_emails, 30),
    "payment_reconciliation": (reconcile_payments, 600),
}


# --- Single runner: the lease --------------------------------------------------------------


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire_lease(db: Session, name: str, holder: str, now: datetime) -> bool:
    """Take the job's lease if it is free or expired (UPDATE ... WHERE, else INSERT); commits."""
    taken = db.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.expires_at < now)
        .values(holder=holder, expires_at=now + LEASE_TTL)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not taken and db.get(JobLease, name) is None:
        try:
            db.add(JobLease(name=name, holder=holder, expires_at=now + LEASE_TTL))
            db.flush()
            taken = 1
        except IntegrityError:
            db.rollback()
            return False
    db.commit()
    return bool(taken)


def release_lease(db: Session, name: str, holder: str) -> None:
    db.rollback()
    db.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.holder == holder)
        .values(expires_at=utcnow() - timedelta(seconds=1))
        .execution_options(synchronize_session=False)
    )
    db.commit()


def run_job(name: str, *, app: Flask | None = None, now: datetime | None = None) -> int | None:
    """Run one job under its lease; None when another runner holds it."""
    app = app or current_app._get_current_object()
    function, _ = JOBS[name]
    with app.app_context():
        db = portal_db.new_session()
        holder = runner_id()
        try:
            if not acquire_lease(db, name, holder, utcnow()):
                log.info("job %s: another runner holds the lease", name)
                return None
            try:
                return function(db, now or utcnow())
            finally:
                release_lease(db, name, holder)
        finally:
            db.close()


# --- Checks right after a debit (never slowing the debit's request) ------------------------

_executor: ThreadPoolExecutor | None = None
_pending: set[tuple] = set()
_pending_lock = threading.Lock()
_futures: set[Future] = set()


_inline = threading.local()


def funds_changed(app: Flask, changed: dict[int, bool]) -> None:
    """After a commit that changed accounts' funds ({account id: went down}).

    Thread mode queues the checks at once; inline mode runs them when the request or app
    context ends (never inside a commit, where another session may hold the database).
    """
    mode = app.config.get("AFTER_DEBIT_CHECKS", "thread")
    if mode == "off":
        return
    if mode != "inline":
        for account_id, decreased in changed.items():
            enqueue_after_debit(app, account_id, recharge=decreased)
        return
    deferred = g.setdefault("funds_checks", {})
    for account_id, decreased in changed.items():
        deferred[account_id] = deferred.get(account_id, False) or decreased


def run_deferred_checks() -> None:
    """Run the inline checks collected during this app context (its teardown)."""
    deferred = g.pop("funds_checks", None)
    if not deferred:
        return
    app = current_app._get_current_object()
    for account_id, decreased in deferred.items():
        try:
            enqueue_after_debit(app, account_id, recharge=decreased)
        except Exception:  # a teardown has nobody to report to but the log
            log.exception("after-change checks failed for account %s", account_id)


def enqueue_after_debit(app: Flask, account_id: int, *, recharge: bool = True) -> None:
    """Queue the auto-recharge and warning checks of an account (in-process, two threads).

    AFTER_DEBIT_CHECKS: "thread" (default), "inline" (tests, CLI) or "off"; the periodic
    sweeps catch anything lost when the process stops. recharge=False (funds went up):
    only the warnings, which re-arm.
    """
    mode = app.config.get("AFTER_DEBIT_CHECKS", "thread")
    if mode == "off":
        return
    if mode == "inline":
        if getattr(_inline, "running", False):
            return  # a check is running in this thread: it ends with the warnings anyway
        _inline.running = True
        try:
            after_debit_checks(app, account_id, recharge=recharge)
        finally:
            _inline.running = False
        return
    key = (id(app), account_id, recharge)
    with _pending_lock:
        if key in _pending:
            return  # a check already queued will see this debit too
        _pending.add(key)
    future = _get_executor().submit(_queued_check, app, account_id, key)
    _futures.add(future)
    future.add_done_callback(_futures.discard)


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    with _pending_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="after-debit")
        return _executor


def _queued_check(app: Flask, account_id: int, key: tuple[int, int, bool]) -> None:
    with _pending_lock:
        _pending.discard(key)
    try:
        after_debit_checks(app, account_id, recharge=key[2])
    except Exception:  # a background thread has nobody to report to but the log
        log.exception("after-debit checks failed for account %s", account_id)


def after_debit_checks(
    app: Flask, account_id: int, now: datetime | None = None, *, recharge: bool = True
) -> None:
    """Auto-recharge if at or below the threshold, then the funds warnings."""
    with app.app_context():
        db = portal_db.new_session()
        try:
            autorecharge = _optional("portal.autorecharge")
            if autorecharge is not None and recharge:
                autorecharge.recharge_if_needed(db, account_id=account_id, now=now)
            from portal.notifications import check_funds_warnings

            check_funds_warnings(db, account_id=account_id, now=now)
            db.commit()
        finally:
            db.close()


# --- The switch's charges: durable checks only when a threshold is reached ---------------------


def funds_check_needed(funds, now: datetime | None = None) -> bool:
    """Would the after-debit checks act on these funds (portal.ledger.FundsSnapshot)?

    The same conditions the checks test first (autorecharge.is_due, the warnings' crossed
    set vs the fired one), evaluated on what the debit statement returned: no query.
    """
    from portal.autorecharge import funds_for_trigger

    threshold = funds.recharge_threshold_minor
    if threshold is not None and funds_for_trigger(funds, now) <= threshold:
        return True
    if not funds.warning_thresholds and not funds.warnings_fired:
        return False
    from portal.notifications import crossed_thresholds

    fired = sorted(part for part in funds.warnings_fired.split(",") if part)
    return crossed_thresholds(funds, now) != fired


def queue_funds_check(db: Session, account_id: int, *, recharge: bool = True) -> None:
    """Queue the account's checks in the caller's transaction (one row per account)."""
    table = FundsCheck.__table__
    stmt = portal_db.dialect_insert(db, table).values(
        account_id=account_id, recharge=recharge, seq=1, queued_at=utcnow()
    )
    db.execute(
        stmt.on_conflict_do_update(
            index_elements=["account_id"],
            set_={
                "seq": table.c.seq + 1,
                "recharge": table.c.recharge | stmt.excluded.recharge,
                "queued_at": stmt.excluded.queued_at,
            },
        )
    )


def drain_funds_checks(
    app: Flask,
    db: Session,
    account_ids: list[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Run queued checks; a row is deleted only if no debit re-queued it meanwhile."""
    stmt = select(FundsCheck.account_id, FundsCheck.seq, FundsCheck.recharge)
    if account_ids is not None:
        stmt = stmt.where(FundsCheck.account_id.in_(account_ids))
    rows = db.execute(stmt.order_by(FundsCheck.queued_at).limit(BATCH)).all()
    db.rollback()
    done = 0
    for account_id, seq, recharge in rows:
        try:
            after_debit_checks(app, account_id, now, recharge=recharge)
        except Exception:  # kept queued: the scheduler retries it
            log.exception("queued funds checks failed for account %s", account_id)
            continue
        db.execute(
            delete(FundsCheck).where(FundsCheck.account_id == account_id, FundsCheck.seq == seq)
        )
        db.commit()
        done += 1
    return done


def after_charge(app: Flask, account_id: int) -> None:
    """After the commit of a charge that queued its checks: drain that row off the request
    (thread), at once (inline), or leave it to the scheduler (off)."""
    mode = app.config.get("AFTER_DEBIT_CHECKS", "thread")
    if mode == "off":
        return
    if mode == "inline":
        _drain_account(app, account_id)
        return
    key = (id(app), account_id, "queued")
    with _pending_lock:
        if key in _pending:
            return  # a drain already waiting will see this row too
        _pending.add(key)
    future = _get_executor().submit(_queued_drain, app, account_id, key)
    _futures.add(future)
    future.add_done_callback(_futures.discard)


def _queued_drain(app: Flask, account_id: int, key) -> None:
    with _pending_lock:
        _pending.discard(key)
    try:
        _drain_account(app, account_id)
    except Exception:  # the row stays queued for the scheduler
        log.exception("queued funds checks failed for account %s", account_id)


def _drain_account(app: Flask, account_id: int) -> None:
    with app.app_context():
        db = portal_db.new_session()
        try:
            drain_funds_checks(app, db, [account_id])
        finally:
            db.close()


def wait_for_queued_checks(timeout: float = 10.0) -> None:
    """Block until queued after-debit checks have run (tests and the CLI)."""
    wait(list(_futures), timeout=timeout)


# --- Helpers -------------------------------------------------------------------------------


def _optional(module: str):
    # Some jobs call modules other work streams provide; absent means "nothing to do yet".
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


def _active_account_ids(db: Session):
    last_id = 0
    while True:
        ids = db.scalars(
            select(Account.id)
            .where(Account.id > last_id, Account.status == AccountStatus.ACTIVE)
            .order_by(Account.id)
            .limit(BATCH)
        ).all()
        if not ids:
            return
        yield from ids
        last_id = ids[-1]
