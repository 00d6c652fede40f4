"""Top-up cards (JeraSoft-style vouchers): generate, search, mass edit, delete, reveal, export.

Atomic batches: cards are inserted in committed chunks while their batch is RUNNING, and
every query here shows only cards whose batch is DONE (or that have no batch). So a batch
appears at once when complete; a killed process leaves an invisible partial batch that
`run_batch` finishes later (each chunk re-reads `generated` under the batch row lock, so two
runners never generate more than `quantity`). Redemption must use `visible_condition()` too.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import (
    column as sql_column,
)
from sqlalchemy import (
    table as sql_table,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import audit
from portal.domain import NotFound, PermissionDenied, ValidationFailed
from portal.i18n import _, format_number
from portal.models import (
    Account,
    BatchStatus,
    CardStatus,
    Reseller,
    Role,
    TopupCard,
    TopupCardBatch,
    User,
    utcnow,
)
from portal.models.base import UTCDateTime
from portal.money import format_plain
from portal.pins import random_digits, vault

log = logging.getLogger(__name__)

MIN_PIN_LENGTH = 5
MAX_PIN_LENGTH = 16
MAX_QUANTITY = 100_000
MAX_AMOUNT_MINOR = 10_000_000  # 100,000.00 in a two-decimal currency: a card, not a bank
# A batch is refused when live PINs of its length would exceed 1/GUESS_FRACTION of the space,
# so a guesser needs about a thousand tries per hit (the redeem lockout stops them long before).
GUESS_FRACTION = 1000
CHUNK_SIZE = 5_000
BACKGROUND_THRESHOLD = 2_000
PAGE_SIZE = 50
SERIES_PATTERN = re.compile(r"^[A-Za-z0-9]{1,20}$")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- visibility and filters -------------------------------------------------------------


def visible_condition() -> ColumnElement[bool]:
    """Cards that exist for people: no batch, or a batch that finished generating."""
    unfinished = select(TopupCardBatch.id).where(TopupCardBatch.status != BatchStatus.DONE)
    return or_(TopupCard.batch_id.is_(None), TopupCard.batch_id.not_in(unfinished))


def card_status(stored: CardStatus, expires_at: datetime | None, now: datetime) -> CardStatus:
    """THE rule for a card's status (SPEC 11), used everywhere:

    activated once redeemed (for ever); otherwise expired while its expiry is in the past
    and new again as soon as it is not (the stored "expired" written by the expiry job is
    only a cache of this rule). `status_condition` is its SQL twin.
    """
    if stored == CardStatus.ACTIVATED:
        return CardStatus.ACTIVATED
    if expires_at is not None and expires_at <= now:
        return CardStatus.EXPIRED
    return CardStatus.NEW


def stored_status_for(expires_at: datetime | None, now: datetime) -> CardStatus:
    """What to store for a card that was never activated, given its (new) expiry."""
    return card_status(CardStatus.NEW, expires_at, now)


def status_condition(status: CardStatus, now: datetime) -> ColumnElement[bool]:
    """SQL for "card_status(...) == status" (kept in step by a test over every case)."""
    unexpired = or_(TopupCard.expires_at.is_(None), TopupCard.expires_at > now)
    never_activated = TopupCard.status.in_([CardStatus.NEW, CardStatus.EXPIRED])
    if status == CardStatus.NEW:
        return and_(never_activated, unexpired)
    if status == CardStatus.EXPIRED:
        return and_(never_activated, TopupCard.expires_at <= now)
    return TopupCard.status == CardStatus.ACTIVATED


def display_status(card: TopupCard, now: datetime | None = None) -> CardStatus:
    """new / activated / expired, by the one rule (card_status)."""
    return card_status(card.status, card.expires_at, now or utcnow())


@dataclass(frozen=True)
class CardFilters:
    """The Advanced Search: every field optional; dates are inclusive calendar days (UTC)."""

    status: CardStatus | None = None
    serial: str = ""  # prefix of the serial number
    series: str = ""
    amount_min: int | None = None
    amount_max: int | None = None
    reseller_id: int | None = None
    batch_id: int | None = None
    created_from: date | None = None
    created_to: date | None = None
    activated_from: date | None = None
    activated_to: date | None = None
    expires_from: date | None = None
    expires_to: date | None = None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _date_range(column, start: date | None, end: date | None) -> list[ColumnElement[bool]]:
    conditions = []
    if start is not None:
        conditions.append(column >= _day_start(start))
    if end is not None:
        conditions.append(column < _day_start(end) + timedelta(days=1))
    return conditions


def _prefix(column, text: str) -> ColumnElement[bool]:
    # A range instead of LIKE so both SQLite and PostgreSQL use the unique serial index.
    return and_(column >= text, column < text + "\U0010ffff")


def filter_conditions(filters: CardFilters, now: datetime | None = None) -> list:
    """SQL conditions for the Advanced Search filters (tenant scope not included)."""
    now = now or utcnow()
    f = filters
    conditions: list = [visible_condition()]
    if f.status is not None:
        conditions.append(status_condition(f.status, now))
    if f.serial:
        conditions.append(_prefix(TopupCard.serial, f.serial))
    if f.series:
        conditions.append(TopupCard.series == f.series)
    if f.amount_min is not None:
        conditions.append(TopupCard.amount_minor >= f.amount_min)
    if f.amount_max is not None:
        conditions.append(TopupCard.amount_minor <= f.amount_max)
    if f.reseller_id is not None:
        conditions.append(TopupCard.reseller_id == f.reseller_id)
    if f.batch_id is not None:
        conditions.append(TopupCard.batch_id == f.batch_id)
    conditions += _date_range(TopupCard.created_at, f.created_from, f.created_to)
    conditions += _date_range(TopupCard.activated_at, f.activated_from, f.activated_to)
    conditions += _date_range(TopupCard.expires_at, f.expires_from, f.expires_to)
    return conditions


def tenant_reseller_id(actor: User) -> int | None:
    """The reseller an admin is limited to (None: the operator sees every reseller)."""
    if actor.role == Role.OPERATOR:
        return None
    if actor.role != Role.RESELLER_ADMIN or actor.reseller_id is None:
        raise PermissionDenied(_("Only administrators manage top-up cards."))
    return actor.reseller_id


@dataclass(frozen=True)
class Scope:
    """Which cards an admin action applies to: the search result, or the selected rows."""

    filters: CardFilters = field(default_factory=CardFilters)
    card_ids: tuple[int, ...] = ()

    def conditions(self, actor: User) -> list:
        conditions = filter_conditions(self.filters if not self.card_ids else CardFilters())
        if self.card_ids:
            conditions.append(TopupCard.id.in_(self.card_ids))
        reseller_id = tenant_reseller_id(actor)
        if reseller_id is not None:
            conditions.append(TopupCard.reseller_id == reseller_id)
        return conditions


# --- search with keyset pagination ---------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SORTS: dict[str, tuple[Any, str]] = {
    "status": (TopupCard.status, "str"),
    "serial": (TopupCard.serial, "str"),
    "amount": (TopupCard.amount_minor, "int"),
    "pin": (TopupCard.pin_length, "int"),
    "reseller": (Reseller.name, "str"),
    # Never-activated cards sort as the oldest, so the keyset has no NULLs to trip on.
    "activated": (func.coalesce(TopupCard.activated_at, literal(_EPOCH, UTCDateTime())), "dt"),
    "created": (TopupCard.created_at, "dt"),
    "expires": (func.coalesce(TopupCard.expires_at, literal(_EPOCH, UTCDateTime())), "dt"),
}


@dataclass(frozen=True)
class CardRow:
    card: TopupCard
    reseller_name: str
    activated_by: str
    status: CardStatus


@dataclass(frozen=True)
class CardPage:
    rows: list[CardRow]
    total: int
    next_cursor: str | None
    prev_cursor: str | None


def encode_cursor(value: Any, card_id: int) -> str:
    raw = value.isoformat() if isinstance(value, datetime) else value
    return base64.urlsafe_b64encode(json.dumps([raw, card_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> tuple[Any, int] | None:
    """The (sort value, id) of a cursor, or None when it is not one of ours."""
    try:
        raw, card_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if kind == "dt":
            raw = datetime.fromisoformat(raw)
            raw = raw if raw.tzinfo else raw.replace(tzinfo=UTC)
        ok = isinstance(raw, {"int": int, "str": str, "dt": datetime}[kind])
        if not ok or isinstance(raw, bool) or not isinstance(card_id, int):
            return None
        return raw, card_id
    except (ValueError, TypeError, KeyError):
        return None


_SORT_VALUES: dict[str, Callable[[TopupCard, str], Any]] = {
    "status": lambda card, _: card.status.value,
    "serial": lambda card, _: card.serial,
    "amount": lambda card, _: card.amount_minor,
    "pin": lambda card, _: card.pin_length,
    "reseller": lambda _, reseller_name: reseller_name,
    "activated": lambda card, _: card.activated_at or _EPOCH,
    "created": lambda card, _: card.created_at,
    "expires": lambda card, _: card.expires_at or _EPOCH,
}


def _sort_value(row, sort: str) -> Any:
    return _SORT_VALUES[sort](row[0], row[1])


def search_cards(
    db: Session,
    *,
    actor: User,
    filters: CardFilters,
    sort: str = "created",
    direction: str = "desc",
    after: str | None = None,
    before: str | None = None,
    page_size: int = PAGE_SIZE,
) -> CardPage:
    """One page of cards matching the filters, in keyset order (fast on millions of rows)."""
    sort = sort if sort in SORTS else "created"
    descending = direction != "asc"
    key, kind = SORTS[sort]
    conditions = Scope(filters=filters).conditions(actor)
    stmt = (
        select(TopupCard, Reseller.name, Account.number, Account.name)
        .join(Reseller, Reseller.id == TopupCard.reseller_id)
        .outerjoin(Account, Account.id == TopupCard.activated_account_id)
        .where(*conditions)
    )
    cursor = decode_cursor(before or after or "", kind) if (before or after) else None
    backwards = cursor is not None and before is not None
    walk_desc = descending != backwards
    if cursor is not None:
        # Typed literals, so the datetime goes through UTCDateTime like the stored values.
        mark = tuple_(literal(cursor[0], key.type), literal(cursor[1], TopupCard.id.type))
        bound = tuple_(key, TopupCard.id)
        stmt = stmt.where(bound < mark if walk_desc else bound > mark)
    order = (key.desc(), TopupCard.id.desc()) if walk_desc else (key.asc(), TopupCard.id.asc())
    rows = db.execute(stmt.order_by(*order).limit(page_size + 1)).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    if backwards:
        rows.reverse()
    return _page(db, rows, conditions, sort, cursor, backwards, more)


def _page(db, rows, conditions, sort, cursor, backwards, more) -> CardPage:
    now = utcnow()
    total = db.scalar(select(func.count()).select_from(TopupCard).where(*conditions)) or 0
    items = [
        CardRow(card, reseller, f"{number} {name}" if number else "", display_status(card, now))
        for card, reseller, number, name in rows
    ]
    first = encode_cursor(_sort_value(rows[0], sort), rows[0][0].id) if rows else None
    last = encode_cursor(_sort_value(rows[-1], sort), rows[-1][0].id) if rows else None
    has_next = more if not backwards else True
    has_prev = (more if backwards else cursor is not None) and bool(rows)
    return CardPage(items, total, last if has_next and rows else None, first if has_prev else None)


# --- generation ---------------------------------------------------------------------------


def _validate_batch(db: Session, *, amount_minor, quantity, series, pin_length, expires_at):
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValidationFailed(_("Enter an amount greater than zero."), field="amount")
    if amount_minor > MAX_AMOUNT_MINOR:
        raise ValidationFailed(_("That amount is too large for a top-up card."), field="amount")
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise ValidationFailed(
            _("Enter a quantity from 1 to %(max)s.", max=format_number(MAX_QUANTITY)),
            field="quantity",
        )
    if not SERIES_PATTERN.match(series or ""):
        raise ValidationFailed(_("Use 1 to 20 letters or digits for the series."), field="series")
    if not isinstance(pin_length, int) or pin_length < MIN_PIN_LENGTH:
        raise ValidationFailed(
            _(
                "The PIN length can be no less than %(min_pin_length)s digits.",
                min_pin_length=MIN_PIN_LENGTH,
            ),
            field="pin_length",
        )
    if pin_length > MAX_PIN_LENGTH:
        raise ValidationFailed(
            _(
                "The PIN length can be at most %(max_pin_length)s digits.",
                max_pin_length=MAX_PIN_LENGTH,
            ),
            field="pin_length",
        )
    if expires_at is None or expires_at <= utcnow():
        raise ValidationFailed(_("Choose an expiration date in the future."), field="expires_at")
    _check_guessability(db, quantity=quantity, pin_length=pin_length)


def live_pins(db: Session, pin_length: int) -> int:
    """Live (new, unexpired) PINs of this length, including batches still generating."""
    now = utcnow()
    existing = db.scalar(
        select(func.count())
        .select_from(TopupCard)
        .where(status_condition(CardStatus.NEW, now), TopupCard.pin_length == pin_length)
    )
    pending = db.scalar(
        select(func.coalesce(func.sum(TopupCardBatch.quantity - TopupCardBatch.generated), 0))
        .where(TopupCardBatch.status == BatchStatus.RUNNING)
        .where(TopupCardBatch.pin_length == pin_length)
    )
    return int(existing or 0) + int(pending or 0)


def _check_guessability(db: Session, *, quantity: int, pin_length: int) -> None:
    live = live_pins(db, pin_length)
    allowed = 10**pin_length // GUESS_FRACTION
    if live + quantity <= allowed:
        return
    suggestion = pin_length + 1
    while suggestion < MAX_PIN_LENGTH and live_pins(db, suggestion) + quantity > (
        10**suggestion // GUESS_FRACTION
    ):
        suggestion += 1
    raise ValidationFailed(
        f"{quantity:,} more {pin_length}-digit PINs would make them easy to guess "
        f"({live:,} live already; at most {allowed:,} keep a guess at 1 in {GUESS_FRACTION:,}). "
        f"Choose a PIN length of {suggestion} or more.",
        field="pin_length",
    )


def plan_batch(
    db: Session,
    *,
    reseller_id: int,
    amount_minor: int,
    quantity: int,
    series: str,
    pin_length: int,
    expires_at: datetime | None,
    actor_user_id: int | None,
) -> TopupCardBatch:
    """Validate and record a RUNNING batch (no cards yet); commits."""
    series = (series or "").strip()
    reseller = db.get(Reseller, reseller_id)
    if reseller is None:
        raise ValidationFailed(_("Choose a reseller."), field="reseller_id")
    _validate_batch(
        db,
        amount_minor=amount_minor,
        quantity=quantity,
        series=series,
        pin_length=pin_length,
        expires_at=expires_at,
    )
    batch = TopupCardBatch(
        reseller_id=reseller.id,
        series=series,
        quantity=quantity,
        generated=0,
        amount_minor=amount_minor,
        currency=reseller.currency,
        pin_length=pin_length,
        expires_at=expires_at,
        status=BatchStatus.RUNNING,
        created_by=actor_user_id,
    )
    db.add(batch)
    db.flush()
    audit.record(
        db,
        actor_user_id=actor_user_id,
        reseller_id=reseller.id,
        action="topup_cards.generate",
        object_type="topup_card_batch",
        object_id=batch.id,
        after=_batch_summary(batch),
    )
    db.commit()
    return batch


def _batch_summary(batch: TopupCardBatch) -> dict:
    return {
        "series": batch.series,
        "quantity": batch.quantity,
        "amount_minor": batch.amount_minor,
        "currency": batch.currency,
        "pin_length": batch.pin_length,
        "expires_at": batch.expires_at,
    }


def _serial_digits(quantity: int) -> int:
    # Enough random digits that collisions stay rare even for a big series.
    return max(8, len(str(quantity * 100)))


def _chunked(items: list, size: int = 2_000) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fresh_values(db, count: int, make: Callable[[], str], key, taken) -> dict[str, str]:
    """`count` new values unique among themselves and absent from the database.

    `key(value)` is what is stored; `taken(keys)` returns which keys already exist.
    """
    fresh: dict[str, str] = {}
    while len(fresh) < count:
        candidates: dict[str, str] = {}
        while len(fresh) + len(candidates) < count:
            value = make()
            k = key(value)
            if k not in fresh:
                candidates[k] = value
        for part in _chunked(list(candidates)):
            for existing in taken(db, part):
                candidates.pop(existing, None)
        fresh.update(candidates)
    return fresh


def _taken_pins(db: Session, hashes: list[str]) -> list[str]:
    # Filter the status here, not in SQL: with "status = 'new'" in the WHERE, SQLite's planner
    # walks the status index (every live card) instead of looking the hashes up.
    rows = db.execute(
        select(TopupCard.pin_hash, TopupCard.status).where(TopupCard.pin_hash.in_(hashes))
    )
    # An expired card keeps its PIN: a new expiry date makes it redeemable again.
    return [pin_hash for pin_hash, status in rows if status != CardStatus.ACTIVATED]


def _taken_serials(db: Session, serials: list[str]) -> list[str]:
    return list(db.scalars(select(TopupCard.serial).where(TopupCard.serial.in_(serials))))


def _card_rows(db: Session, batch: TopupCardBatch, count: int) -> list[dict]:
    pin_vault = vault()
    pins = _fresh_values(
        db, count, lambda: random_digits(batch.pin_length), pin_vault.hash, _taken_pins
    )
    digits = _serial_digits(batch.quantity)
    serials = _fresh_values(
        db, count, lambda: f"{batch.series}-{random_digits(digits)}", str, _taken_serials
    )
    common = {
        "reseller_id": batch.reseller_id,
        "batch_id": batch.id,
        "series": batch.series,
        "amount_minor": batch.amount_minor,
        "currency": batch.currency,
        "pin_length": batch.pin_length,
        "status": CardStatus.NEW,
        "expires_at": batch.expires_at,
        "created_at": batch.created_at,
    }
    return [
        {**common, "serial": serial, "pin_hash": pin_hash, "pin_encrypted": pin_vault.encrypt(pin)}
        for serial, (pin_hash, pin) in zip(serials, pins.items(), strict=True)
    ]


def _insert_rows(db: Session, rows: list[dict]) -> None:
    """Core executemany of card rows, converting the batch-wide values once, not per row.

    The columns that differ per card (serial, PIN hash, encrypted PIN) are plain str/bytes
    that need no conversion, so an untyped table skips SQLAlchemy's per-row processing.
    """
    connection = db.connection()
    shared = {
        key: _to_db(connection.dialect, key, value)
        for key, value in rows[0].items()
        if key not in _PER_CARD
    }
    plain = sql_table(TopupCard.__tablename__, *(sql_column(key) for key in rows[0]))
    connection.execute(
        insert(plain), [{**shared, **{key: row[key] for key in _PER_CARD}} for row in rows]
    )


_PER_CARD = ("serial", "pin_hash", "pin_encrypted")


def _to_db(dialect, key: str, value: Any) -> Any:
    processor = TopupCard.__table__.c[key].type.bind_processor(dialect)
    return processor(value) if processor and value is not None else value


def _generate_chunk(db: Session, batch_id: int) -> TopupCardBatch:
    """Insert the next chunk of a batch in one transaction; commits."""
    batch = db.scalar(select(TopupCardBatch).where(TopupCardBatch.id == batch_id).with_for_update())
    if batch is None:
        raise NotFound(_("That batch no longer exists."))
    if db.get_bind().dialect.name == "sqlite":
        # The random PIN hashes and serials land all over their indexes; SQLite's default 2 MB
        # page cache then thrashes and inserting 100,000 cards takes 3x longer.
        db.execute(text("PRAGMA cache_size = -65536"))
    if batch.status == BatchStatus.RUNNING:
        count = min(CHUNK_SIZE, batch.quantity - batch.generated)
        if count > 0:
            _insert_rows(db, _card_rows(db, batch, count))
            batch.generated += count
        if batch.generated >= batch.quantity:
            batch.status = BatchStatus.DONE
    db.commit()
    return batch


def run_batch(
    db: Session, *, batch_id: int, progress: Callable[[int, int], None] | None = None
) -> TopupCardBatch:
    """Generate the remaining cards of a RUNNING batch in committed chunks (resumable)."""
    clashes = 0
    while True:
        try:
            batch = _generate_chunk(db, batch_id)
        except IntegrityError:
            # Another batch took one of our PINs or serials between check and insert: redraw.
            db.rollback()
            clashes += 1
            if clashes > 5:
                return _fail_batch(db, batch_id, "Could not find unique PINs; try again.")
            continue
        except Exception as exc:
            db.rollback()
            _fail_batch(db, batch_id, f"Generation failed: {type(exc).__name__}")
            raise
        if progress is not None:
            progress(batch.generated, batch.quantity)
        if batch.status != BatchStatus.RUNNING:
            return batch


def _fail_batch(db: Session, batch_id: int, message: str) -> TopupCardBatch:
    # A failed batch leaves nothing behind: its partial (invisible) cards are removed.
    db.execute(delete(TopupCard).where(TopupCard.batch_id == batch_id))
    batch = db.get(TopupCardBatch, batch_id, populate_existing=True)
    batch.status = BatchStatus.FAILED
    batch.error = message[:300]
    db.commit()
    return batch


def generate_cards(
    db: Session,
    *,
    reseller_id: int,
    amount_minor: int,
    quantity: int,
    series: str,
    pin_length: int,
    expires_at: datetime | None,
    actor_user_id: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> TopupCardBatch:
    """Generate a batch of top-up cards now (bulk inserts); visible only once complete."""
    batch = plan_batch(
        db,
        reseller_id=reseller_id,
        amount_minor=amount_minor,
        quantity=quantity,
        series=series,
        pin_length=pin_length,
        expires_at=expires_at,
        actor_user_id=actor_user_id,
    )
    return run_batch(db, batch_id=batch.id, progress=progress)


def start_generation(db: Session, **params) -> TopupCardBatch:
    """Generate a batch: small ones now, large ones in a background thread (poll the batch)."""
    batch = plan_batch(db, **params)
    if batch.quantity <= BACKGROUND_THRESHOLD:
        return run_batch(db, batch_id=batch.id)
    run_in_background(batch.id)
    return batch


def _workers() -> dict[int, threading.Thread]:
    return current_app.extensions.setdefault("topup_card_workers", {})


def is_generating(batch_id: int) -> bool:
    """Whether a thread of this process is generating the batch now."""
    worker = _workers().get(batch_id)
    return worker is not None and worker.is_alive()


def run_in_background(batch_id: int) -> None:
    """Run (or resume) a batch in a thread with its own session."""
    if is_generating(batch_id):
        return
    app = current_app._get_current_object()
    worker = threading.Thread(
        target=_background, args=(app, batch_id), name=f"topup-batch-{batch_id}", daemon=True
    )
    _workers()[batch_id] = worker
    worker.start()


def _background(app, batch_id: int) -> None:
    from portal import db as portal_db

    with app.app_context():
        session = portal_db.new_session()
        try:
            run_batch(session, batch_id=batch_id)
        except Exception:
            log.exception("top-up card batch %s failed", batch_id)
        finally:
            session.close()


def resume_batch(db: Session, *, batch: TopupCardBatch, actor: User) -> TopupCardBatch:
    """Continue a batch whose generation stopped (e.g. the server restarted)."""
    if batch.status != BatchStatus.RUNNING:
        raise ValidationFailed(_("This batch is not waiting to be generated."))
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=batch.reseller_id,
        action="topup_cards.resume",
        object_type="topup_card_batch",
        object_id=batch.id,
        after={"generated": batch.generated, "quantity": batch.quantity},
    )
    db.commit()
    run_in_background(batch.id)
    return batch


# --- admin changes ------------------------------------------------------------------------


def mass_edit(
    db: Session,
    *,
    scope: Scope,
    actor: User,
    expires_at: datetime | None = None,
    reseller_id: int | None = None,
) -> int:
    """Set the expiry and/or the owner of the cards in scope in ONE update; returns changes.

    Activated cards are history and are left as they are.
    """
    values: dict[str, Any] = {}
    changed: list = []
    if expires_at is not None:
        # A future date makes an expired, never-activated card new again (and a past one
        # expires it): the stored status follows the one rule, card_status.
        values["expires_at"] = expires_at
        values["status"] = stored_status_for(expires_at, utcnow())
        changed.append(TopupCard.expires_at.is_distinct_from(expires_at))
        changed.append(TopupCard.status != values["status"])
    if reseller_id is not None:
        target = _target_reseller(db, actor, reseller_id, scope)
        values.update(reseller_id=target.id)
        changed.append(TopupCard.reseller_id != target.id)
    if not values:
        raise ValidationFailed(_("Choose “set to” for at least one field."))
    conditions = [*scope.conditions(actor), TopupCard.status != CardStatus.ACTIVATED]
    result = db.execute(
        update(TopupCard)
        .where(*conditions, or_(*changed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    _record_scope_action(db, actor, "topup_cards.mass_edit", scope, values, result.rowcount)
    db.commit()
    return result.rowcount


def _target_reseller(db: Session, actor: User, reseller_id: int, scope: Scope) -> Reseller:
    if actor.role != Role.OPERATOR:
        raise PermissionDenied(_("Only the operator can move cards to another company."))
    target = db.get(Reseller, reseller_id)
    if target is None:
        raise ValidationFailed(_("Choose a company."), field="reseller_id")
    other_currency = db.scalar(
        select(TopupCard.id)
        .where(*scope.conditions(actor), TopupCard.status != CardStatus.ACTIVATED)
        .where(TopupCard.currency != target.currency)
        .limit(1)
    )
    if other_currency is not None:
        raise ValidationFailed(
            _(
                "Some of these cards are not in %(currency)s, the currency of %(name)s.",
                currency=target.currency,
                name=target.name,
            ),
            field="reseller_id",
        )
    return target


def _record_scope_action(db, actor: User, action: str, scope: Scope, values, count: int):
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=actor.reseller_id,
        action=action,
        object_type="topup_cards",
        object_id=f"{count} cards",
        before={"filters": scope.filters.__dict__, "card_ids": list(scope.card_ids)},
        after={**values, "count": count},
    )


def delete_cards(db: Session, *, scope: Scope, confirmation: str, actor: User) -> int:
    """Delete the cards in scope after the admin typed DELETE; ledger entries stay untouched."""
    if (confirmation or "").strip() != "DELETE":
        raise ValidationFailed(_("Type DELETE to confirm."), field="confirmation")
    # Ledger entries name a redeemed card by its serial (text), so removing rows loses no money.
    result = db.execute(
        delete(TopupCard)
        .where(*scope.conditions(actor))
        .execution_options(synchronize_session=False)
    )
    _record_scope_action(db, actor, "topup_cards.delete", scope, {}, result.rowcount)
    db.commit()
    return result.rowcount


def reveal_pin(db: Session, *, card: TopupCard, actor: User) -> str:
    """Decrypt one card's PIN for an admin and write the audit row."""
    if db.scalar(select(TopupCard.id).where(TopupCard.id == card.id, visible_condition())) is None:
        raise NotFound(_("That card does not exist."))
    pin = vault().decrypt(card.pin_encrypted)
    audit.record(
        db,
        actor_user_id=actor.id,
        reseller_id=card.reseller_id,
        action="topup_cards.reveal_pin",
        object_type="topup_card",
        object_id=card.id,
        after={"serial": card.serial},
    )
    db.commit()
    return pin


# --- CSV export -------------------------------------------------------------------------

CSV_HEADER = ["Serial Number", "PIN Code", "Amount", "Currency", "Expiration date"]


def neutralise(cell: str) -> str:
    """Stop spreadsheets running a cell as a formula (CSV injection)."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def export_csv(db: Session, *, scope: Scope, actor: User) -> str:
    """The cards in scope as CSV (serial, PIN, amount, currency, expiry) for printing; audited."""
    pin_vault = vault()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    stmt = (
        select(
            TopupCard.serial,
            TopupCard.pin_encrypted,
            TopupCard.amount_minor,
            TopupCard.currency,
            TopupCard.expires_at,
        )
        .where(*scope.conditions(actor))
        .order_by(TopupCard.serial)
        .execution_options(yield_per=5_000)
    )
    count = 0
    for serial, pin_encrypted, amount_minor, currency, expires_at in db.execute(stmt):
        cells = [
            serial,
            pin_vault.decrypt(pin_encrypted),
            format_plain(amount_minor, currency),
            currency,
            expires_at.strftime("%Y-%m-%d %H:%M") if expires_at else "",
        ]
        writer.writerow([neutralise(cell) for cell in cells])
        count += 1
    _record_scope_action(db, actor, "topup_cards.export", scope, {}, count)
    db.commit()
    return out.getvalue()


def batch_scope(db: Session, *, batch: TopupCardBatch) -> Scope:
    """The scope of one finished batch (for its CSV)."""
    if batch.status != BatchStatus.DONE:
        raise ValidationFailed(_("The batch is still being generated."))
    return Scope(filters=CardFilters(batch_id=batch.id))
