"""Admin views: top-up cards (table, Advanced Search, Generate, Mass Edit, Delete all, CSV)."""

from __future__ import annotations

from datetime import UTC

from flask import Response, abort, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import escape
from sqlalchemy import select
from wtforms import (
    DateTimeLocalField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from portal import db, topup_cards
from portal.admin import bp
from portal.domain import DomainError
from portal.forms import DayField, MoneyField, choices
from portal.i18n import _, _l
from portal.models import CardStatus, Reseller, TopupCard, TopupCardBatch
from portal.security import get_scoped_or_404
from portal.settings import default_currency
from portal.web import is_htmx, render

SEARCH_FIELDS = (
    "status",
    "serial",
    "series",
    "amount_min",
    "amount_max",
    "reseller",
    "created_from",
    "created_to",
    "activated_from",
    "activated_to",
    "expires_from",
    "expires_to",
)
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
MAX_SELECTED = 1_000


class OptionalMoneyField(MoneyField):
    """A MoneyField that may be left empty (then `.minor` is None)."""

    def pre_validate(self, form) -> None:
        if not (self.data or "").strip():
            self.minor = None
            return
        super().pre_validate(form)


def _resellers() -> list[Reseller]:
    stmt = select(Reseller).order_by(Reseller.name)
    if not current_user.is_operator:
        stmt = stmt.where(Reseller.id == current_user.reseller_id)
    return list(db.session().scalars(stmt))


def _actor():
    return current_user._get_current_object()


def apply_error(form, error: DomainError) -> None:
    """Show a domain refusal next to its field, or above the form."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)


class SearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search: bookmarkable, changes nothing

    status = SelectField(
        _l("Status"),
        choices=choices(
            [("", _l("Any"))] + [(s.value, _l(s.value.capitalize())) for s in CardStatus]
        ),
        validators=[Optional()],
    )
    serial = StringField(_l("Serial number"), validators=[Optional(), Length(max=40)])
    series = StringField(_l("Series"), validators=[Optional(), Length(max=20)])
    amount_min = OptionalMoneyField(_l("Amount from"), allow_zero=True)
    amount_max = OptionalMoneyField(_l("Amount to"), allow_zero=True)
    reseller = SelectField(_l("Reseller"), validators=[Optional()])
    created_from = DayField(_l("Created from"), validators=[Optional()])
    created_to = DayField(_l("Created to"), validators=[Optional()])
    activated_from = DayField(_l("Activated from"), validators=[Optional()])
    activated_to = DayField(_l("Activated to"), validators=[Optional()])
    expires_from = DayField(_l("Expiration date from"), validators=[Optional()])
    expires_to = DayField(_l("Expiration date to"), validators=[Optional()])

    def filters(self, batch_id: int | None = None) -> topup_cards.CardFilters:
        return topup_cards.CardFilters(
            # Optional() lets a blank-only value through without the choice check.
            status=CardStatus(self.status.data.strip())
            if (self.status.data or "").strip()
            else None,
            serial=(self.serial.data or "").strip(),
            series=(self.series.data or "").strip(),
            amount_min=self.amount_min.minor,
            amount_max=self.amount_max.minor,
            reseller_id=int(self.reseller.data) if (self.reseller.data or "").isdigit() else None,
            batch_id=batch_id,
            created_from=self.created_from.data,
            created_to=self.created_to.data,
            activated_from=self.activated_from.data,
            activated_to=self.activated_to.data,
            expires_from=self.expires_from.data,
            expires_to=self.expires_to.data,
        )


def _search_form(formdata) -> tuple[SearchForm, topup_cards.CardFilters | None]:
    form = SearchForm(formdata=formdata)
    form.currency = _currency()
    resellers = _resellers() if current_user.is_operator else []
    form.reseller.choices = choices([("", _("Any"))] + [(r.id, r.name) for r in resellers])
    if not form.validate():
        return form, None
    batch = formdata.get("batch", type=int)
    return form, form.filters(batch_id=batch)


def _currency() -> str:
    if current_user.reseller is not None:
        return current_user.reseller.currency
    return default_currency(db.session())


def _applied_args(formdata) -> dict[str, str]:
    """The search as query arguments (kept in links, hidden inputs and the pushed URL)."""
    keys = (*SEARCH_FIELDS, "batch")
    return {key: formdata.get(key) for key in keys if formdata.get(key)}


def _results_context(formdata, **extra) -> dict:
    form, filters = _search_form(formdata)
    sort = formdata.get("sort", "created")
    page = None
    if filters is not None:
        page = topup_cards.search_cards(
            db.session(),
            actor=_actor(),
            filters=filters,
            sort=sort,
            direction=formdata.get("dir", "desc"),
            after=formdata.get("after") or None,
            before=formdata.get("before") or None,
        )
    return {
        "search_form": form,
        "page": page,
        "scope_args": _applied_args(formdata),
        "sort": sort if sort in topup_cards.SORTS else "created",
        "direction": "asc" if formdata.get("dir") == "asc" else "desc",
        "mass_form": extra.pop("mass_form", None) or _mass_form(),
        **extra,
    }


@bp.get("/topup-cards", endpoint="topup_cards")
def topup_cards_list():
    """The cards table with the Advanced Search (HTMX swaps only the results)."""
    context = _results_context(request.args)
    if is_htmx() and request.htmx.target == "card-results":
        return render_template("admin/topup_cards/_results.html", **context)
    return render(
        "admin/topup_cards/index.html",
        "admin/topup_cards/_results.html",
        generate_form=_generate_form(),
        **context,
    )


# --- Generate Top-Up Cards ----------------------------------------------------------------


class GenerateForm(FlaskForm):
    amount = MoneyField(_l("Amount"))
    quantity = IntegerField(
        _l("Quantity"),
        validators=[
            InputRequired(_l("Enter the quantity.")),
            NumberRange(1, topup_cards.MAX_QUANTITY, "Enter a quantity from 1 to 100,000."),
        ],
    )
    series = StringField(_l("Series"), validators=[InputRequired(_l("Enter the series."))])
    pin_length = IntegerField(
        _l("PIN Length"),
        default=10,
        validators=[
            InputRequired(_l("Enter the PIN length.")),
            NumberRange(min=topup_cards.MIN_PIN_LENGTH, message=_l("It can be no less than 5.")),
        ],
    )
    reseller_id = SelectField(_l("Reseller"))
    expires_at = DateTimeLocalField(
        _l("Expiration date"),
        format=DATETIME_FORMAT,
        validators=[InputRequired(_l("Choose the expiration date."))],
    )


def _generate_form() -> GenerateForm:
    # Prefixed: the Advanced Search on the same page has its own "series" field.
    form = GenerateForm(prefix="generate")
    resellers = _resellers()
    form.reseller_id.choices = choices([(r.id, r.name) for r in resellers])
    chosen = next((r for r in resellers if str(r.id) == form.reseller_id.data), None)
    form.currency = (chosen or resellers[0]).currency if resellers else _currency()
    return form


@bp.post("/topup-cards/generate")
def topup_cards_generate():
    """Generate a batch (large ones in the background; the panel then polls progress)."""
    form = _generate_form()
    batch = None
    if form.validate():
        try:
            batch = topup_cards.start_generation(
                db.session(),
                reseller_id=int(form.reseller_id.data),
                amount_minor=form.amount.minor,
                quantity=form.quantity.data,
                series=form.series.data,
                pin_length=form.pin_length.data,
                expires_at=form.expires_at.data.replace(tzinfo=UTC),
                actor_user_id=current_user.id,
            )
        except DomainError as error:
            apply_error(form, error)
    if batch is None:
        return render_template("admin/topup_cards/_generate.html", generate_form=form)
    return _batch_response(batch)


def _batch_response(batch: TopupCardBatch):
    html = render_template(
        "admin/topup_cards/_batch.html",
        batch=batch,
        generating=topup_cards.is_generating(batch.id),
    )
    if is_htmx():
        response = Response(html)
        if batch.status.value == "done":
            response.headers["HX-Trigger"] = "cards-changed"
        return response
    return render_template("admin/topup_cards/batch.html", batch_html=html, batch=batch)


@bp.get("/topup-cards/batches/<int:batch_id>")
def topup_cards_batch(batch_id: int):
    """A batch's progress (polled by the dialog) and, when done, its CSV link."""
    return _batch_response(get_scoped_or_404(TopupCardBatch, batch_id))


@bp.post("/topup-cards/batches/<int:batch_id>/resume")
def topup_cards_batch_resume(batch_id: int):
    batch = get_scoped_or_404(TopupCardBatch, batch_id)
    try:
        batch = topup_cards.resume_batch(db.session(), batch=batch, actor=_actor())
    except DomainError as error:
        return Response(f'<p class="alert alert-error">{escape(error.message)}</p>')
    return _batch_response(batch)


def _csv_response(text: str, filename: str) -> Response:
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/topup-cards/batches/<int:batch_id>/cards.csv")
def topup_cards_batch_csv(batch_id: int):
    """Download CSV of one finished batch (serial, PIN, amount, currency, expiry); audited."""
    batch = get_scoped_or_404(TopupCardBatch, batch_id)
    session = db.session()
    try:
        scope = topup_cards.batch_scope(session, batch=batch)
    except DomainError as error:
        return Response(error.message, status=409, mimetype="text/plain")
    text = topup_cards.export_csv(session, scope=scope, actor=_actor())
    return _csv_response(text, f"topup-cards-{batch.series}-{batch.id}.csv")


@bp.get("/topup-cards/export.csv")
def topup_cards_export():
    """Download CSV of the current search result."""
    form, filters = _search_form(request.args)
    if filters is None:
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        return Response(f"Correct the search first: {errors}", status=400, mimetype="text/plain")
    scope = topup_cards.Scope(filters=filters)
    text = topup_cards.export_csv(db.session(), scope=scope, actor=_actor())
    return _csv_response(text, "topup-cards.csv")


@bp.post("/topup-cards/<int:card_id>/reveal")
def topup_cards_reveal(card_id: int):
    """Show one PIN (audited)."""
    card = get_scoped_or_404(TopupCard, card_id)
    try:
        pin = topup_cards.reveal_pin(db.session(), card=card, actor=_actor())
    except DomainError:
        abort(404)
    return render_template("admin/topup_cards/_pin.html", pin=pin, card=card)


# --- Mass Edit and Delete all ---------------------------------------------------------------

MODES = choices([("preserve", "preserve"), ("set", "set to")])


class MassEditForm(FlaskForm):
    expires_mode = RadioField(_l("Expiration date"), choices=MODES, default="preserve")
    expires_at = DateTimeLocalField(
        _l("New expiration date"), format=DATETIME_FORMAT, validators=[Optional()]
    )
    company_mode = RadioField(_l("Company"), choices=MODES, default="preserve")
    company_id = SelectField(_l("New company"), validators=[Optional()])
    confirmation = StringField(_l("Type DELETE to delete every card in scope"))

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.expires_mode.data == "set" and self.expires_at.data is None:
            self.expires_at.errors = [*self.expires_at.errors, "Choose the date and time."]
            ok = False
        if self.company_mode.data == "set" and not self.company_id.data:
            self.company_id.errors = [*self.company_id.errors, "Choose a company."]
            ok = False
        return ok


def _mass_form() -> MassEditForm:
    form = MassEditForm()
    form.company_id.choices = choices([("", "—")] + [(r.id, r.name) for r in _resellers()])
    return form


def _scope_from_request() -> topup_cards.Scope | None:
    raw_ids = request.form.getlist("card_id")
    if len(raw_ids) > MAX_SELECTED:
        return None
    try:
        card_ids = tuple(int(value) for value in raw_ids)
    except ValueError:
        return None
    _form, filters = _search_form(request.form)
    if filters is None:
        return None
    return topup_cards.Scope(filters=filters, card_ids=card_ids)


def _scoped_action(action) -> tuple:
    """Run a mass action on the posted scope; returns (message, form)."""
    form = _mass_form()
    scope = _scope_from_request()
    if scope is None:
        form.form_errors.append(_("The selection or search is not valid; search again."))
        return None, form
    if not form.validate():
        return None, form
    try:
        return action(form, scope), form
    except DomainError as error:
        apply_error(form, error)
        return None, form


def _mass_response(message: str | None, form: MassEditForm):
    context = _results_context(request.form, mass_form=form, message=message)
    context["dialog_open"] = message is None
    return render(
        "admin/topup_cards/index.html",
        "admin/topup_cards/_results.html",
        generate_form=_generate_form(),
        **context,
    )


@bp.post("/topup-cards/mass-edit")
def topup_cards_mass_edit():
    """Process: set the expiry and/or company of the cards in scope in one UPDATE."""

    def edit(form: MassEditForm, scope):
        expires = form.expires_at.data if form.expires_mode.data == "set" else None
        company = form.company_id.data if form.company_mode.data == "set" else None
        count = topup_cards.mass_edit(
            db.session(),
            scope=scope,
            actor=_actor(),
            expires_at=expires.replace(tzinfo=UTC) if expires else None,
            reseller_id=int(company) if company else None,
        )
        return f"{count:,} card{'s' if count != 1 else ''} changed."

    return _mass_response(*_scoped_action(edit))


@bp.post("/topup-cards/delete")
def topup_cards_delete():
    """Delete all: the cards in scope, after the admin typed DELETE."""

    def remove(form: MassEditForm, scope):
        count = topup_cards.delete_cards(
            db.session(), scope=scope, confirmation=form.confirmation.data, actor=_actor()
        )
        return f"{count:,} card{'s' if count != 1 else ''} deleted."

    return _mass_response(*_scoped_action(remove))
