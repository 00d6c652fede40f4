from flask import request

from portal import db
from portal.billing import bp
from portal.billing.context import current_account
from portal.billing.forms import HistoryFilterForm
from portal.charts import line_chart
from portal.history import HistoryFilter, balance_series, history_page
from portal.ledger import available_funds, effective_credit_limit
from portal.models import EntryKind
from portal.web import is_htmx, render


def _history_filters(form: HistoryFilterForm) -> HistoryFilter:
    if not form.validate():
        return HistoryFilter()
    kind = EntryKind(form.kind.data) if form.kind.data else None
    return HistoryFilter(kind, form.date_from.data, form.date_to.data)


def _before_id() -> int | None:
    raw = request.args.get("before", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


@bp.get("/balance")
def balance():
    """Account balance: figures, chart, and the history (HTMX swaps just the history)."""
    account = current_account()
    form = HistoryFilterForm(request.args)
    filters = _history_filters(form)
    page = history_page(db.session(), account.id, filters, before_id=_before_id())
    context = {"account": account, "form": form, "page": page}
    if is_htmx():
        fragment = "billing/_history_rows.html" if _before_id() else "billing/_history.html"
        return render("billing/balance.html", fragment, **context)
    chart = line_chart(balance_series(db.session(), account.id))
    return render(
        "billing/balance.html",
        "billing/_history.html",
        chart=chart,
        credit_limit=effective_credit_limit(account),
        available=available_funds(account),
        **context,
    )
