"""Gap-free document numbers per reseller (receipts; usable for invoices and credit notes)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def take_number(db: Session, counter_model: type, reseller_id: int) -> int:
    """The reseller's next number from `counter_model` (reseller_id, last_number) rows.

    Taken under the counter row's lock, in the caller's transaction: a rollback gives the
    number back, so numbers never skip.
    """
    stmt = (
        select(counter_model)
        .where(counter_model.reseller_id == reseller_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    counter = db.scalar(stmt)
    if counter is None:
        try:
            with db.begin_nested():
                db.add(counter_model(reseller_id=reseller_id, last_number=0))
        except IntegrityError:
            pass  # another transaction created it first
        counter = db.scalar(stmt)
    counter.last_number += 1
    return counter.last_number
