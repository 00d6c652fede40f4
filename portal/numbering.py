"""Gap-free document numbers per reseller: invoices, credit notes, receipts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def take_number(
    db: Session, counter_model: type, reseller_id: int, column: str = "last_number"
) -> int:
    """The reseller's next number from `counter_model` (reseller_id, last_number) rows.

    Taken under the counter row's lock, in the caller's transaction: a rollback gives the
    number back, so numbers never skip. `column` picks another series kept on the same row
    (credit notes beside invoices).
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
                db.add(counter_model(reseller_id=reseller_id))
        except IntegrityError:
            pass  # another transaction created it first
        counter = db.scalar(stmt)
    number = (getattr(counter, column) or 0) + 1
    setattr(counter, column, number)
    return number
