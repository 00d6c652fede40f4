"""Admin views: card codes and their credit (VoipNow "Credit Management for Card Code")."""

from __future__ import annotations

from flask import render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from portal import card_codes, db
from portal.admin import bp
from portal.admin.topup_cards_views import OptionalMoneyField, apply_error
from portal.domain import DomainError
from portal.forms import DayField, choices
from portal.i18n import _, _l, format_number, ngettext
from portal.models import Account, CardCode
from portal.security import get_scoped_or_404, tenant_select
from portal.settings import default_currency
from portal.web import render


def _actor():
    return current_user._get_current_object()


def _account_choices():
    accounts = db.session().scalars(tenant_select(Account).order_by(Account.name).limit(1000))
    return choices([("", "Choose…")] + [(a.id, f"{a.number} {a.name}") for a in accounts])


class AddCardCodeForm(FlaskForm):
    code = StringField(_l("Card code"), validators=[InputRequired(_l("Enter the card code."))])
    account_id = SelectField(_l("Customer account"))
    extension = StringField(_l("Extension"), validators=[Optional(), Length(max=40)])
    initial_credit = OptionalMoneyField(_l("Initial credit"), allow_zero=True)
    unlimited = BooleanField(_l("Unlimited"))


class GenerateCardCodesForm(FlaskForm):
    quantity = IntegerField(
        _l("Quantity"),
        validators=[
            InputRequired(_l("Enter the quantity.")),
            NumberRange(1, card_codes.MAX_GENERATE, "Enter a quantity from 1 to 10,000."),
        ],
    )
    code_length = IntegerField(
        _l("Code length"),
        default=8,
        validators=[
            InputRequired(_l("Enter the code length.")),
            NumberRange(4, 20, "The code length is 4 to 20 digits."),
        ],
    )
    account_id = SelectField(_l("Customer account"))
    initial_credit = OptionalMoneyField(_l("Initial credit"), allow_zero=True)
    unlimited = BooleanField(_l("Unlimited"))


def _forms(formdata=True):
    """The Add and Generate forms (bound to the posted data unless formdata=None)."""
    currency = default_currency(db.session())
    extra = {} if formdata is True else {"formdata": None}
    forms = (AddCardCodeForm(prefix="add", **extra), GenerateCardCodesForm(prefix="gen", **extra))
    for form in forms:
        form.currency = currency
        form.account_id.choices = _account_choices()
    return forms


def _list_response(add_form, gen_form, message: str | None = None):
    rows = card_codes.list_card_codes(db.session(), actor=_actor())
    return render(
        "admin/card_codes/index.html",
        "admin/card_codes/_card_codes.html",
        rows=rows,
        add_form=add_form,
        gen_form=gen_form,
        message=message,
    )


@bp.get("/card-codes", endpoint="card_codes")
def card_codes_list():
    """Card codes with their credit, and the Add / Generate forms."""
    return _list_response(*_forms())


def _account_id(form) -> int | None:
    return int(form.account_id.data) if (form.account_id.data or "").isdigit() else None


@bp.post("/card-codes/add")
def card_codes_add():
    add_form, gen_form = _forms()
    if add_form.validate():
        try:
            card = card_codes.add_card_code(
                db.session(),
                actor=_actor(),
                account_id=_account_id(add_form),
                code=add_form.code.data,
                extension=add_form.extension.data,
                initial_credit_minor=add_form.initial_credit.minor,
                unlimited=add_form.unlimited.data,
            )
            return _list_response(
                *_forms(formdata=None), message=_("Card code %(code)s added.", code=card.code)
            )
        except DomainError as error:
            apply_error(add_form, error)
    return _list_response(add_form, gen_form)


@bp.post("/card-codes/generate")
def card_codes_generate():
    add_form, gen_form = _forms()
    if gen_form.validate():
        try:
            cards = card_codes.generate_card_codes(
                db.session(),
                actor=_actor(),
                account_id=_account_id(gen_form),
                quantity=gen_form.quantity.data,
                code_length=gen_form.code_length.data,
                initial_credit_minor=gen_form.initial_credit.minor,
                unlimited=gen_form.unlimited.data,
            )
            return _list_response(
                *_forms(formdata=None),
                message=ngettext(
                    "%(count)s card code generated.",
                    "%(count)s card codes generated.",
                    len(cards),
                    count=format_number(len(cards)),
                ),
            )
        except DomainError as error:
            apply_error(gen_form, error)
    return _list_response(add_form, gen_form)


# --- Credit Management for Card Code <code> ---------------------------------------------------


class RechargeSearchForm(FlaskForm):
    class Meta:
        csrf = False

    order = StringField(_l("Order number"), validators=[Optional(), Length(max=60)])
    date_from = DayField(_l("Date from"), validators=[Optional()])
    date_to = DayField(_l("Date to"), validators=[Optional()])


class AddCreditForm(FlaskForm):
    amount = OptionalMoneyField(_l("Add credit"), allow_negative=True)
    unlimited = BooleanField(_l("Unlimited"))
    order_number = StringField(
        _l("Order number"),
        validators=[
            InputRequired(_l("Enter the order number.")),
            Length(max=60, message=_l("Use at most 60 characters.")),
        ],
    )


def _credit_context(card: CardCode, credit_form: AddCreditForm, message: str | None = None):
    search = RechargeSearchForm(formdata=request.args)
    recharges = None
    if search.validate():
        recharges = card_codes.search_recharges(
            db.session(),
            card_code=card,
            order_number=search.order.data or "",
            date_from=search.date_from.data,
            date_to=search.date_to.data,
        )
    return {
        "card": card,
        "hint": card_codes.credit_hint(card),
        "credit_form": credit_form,
        "search_form": search,
        "recharges": recharges,
        "usage": card_codes.card_code_usage(db.session(), card),
        "message": message,
    }


def _credit_form() -> AddCreditForm:
    form = AddCreditForm()
    form.currency = default_currency(db.session())
    return form


@bp.get("/card-codes/<int:card_id>/credit")
def card_code_credit(card_id: int):
    """Credit Management for Card Code <code>: Recharge History and Add credit."""
    card = get_scoped_or_404(CardCode, card_id)
    context = _credit_context(card, _credit_form())
    if request.htmx and request.htmx.target == "recharge-history":
        return render_template("admin/card_codes/_history.html", **context)
    return render("admin/card_codes/credit.html", "admin/card_codes/_credit.html", **context)


@bp.post("/card-codes/<int:card_id>/credit")
def card_code_add_credit(card_id: int):
    """OK on the Add credit form: one recharge under the card code's row lock."""
    card = get_scoped_or_404(CardCode, card_id)
    form = _credit_form()
    message = None
    if form.validate():
        try:
            recharge = card_codes.add_credit(
                db.session(),
                card_code=card,
                amount_minor=form.amount.minor,
                unlimited=form.unlimited.data,
                order_number=form.order_number.data,
                actor=_actor(),
            )
            message = _("Credit for order %(order)s added.", order=recharge.order_number)
            form = AddCreditForm(formdata=None)
            form.currency = card.currency
        except DomainError as error:
            apply_error(form, error)
    context = _credit_context(card, form, message)
    return render("admin/card_codes/credit.html", "admin/card_codes/_credit.html", **context)
