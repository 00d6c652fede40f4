"""Admin views: API tokens for the switch (create, shown once; list; revoke)."""

from flask import flash, redirect, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import InputRequired, Length

from portal import api_tokens as tokens_domain
from portal import audit, db
from portal.admin import bp
from portal.domain import ValidationFailed
from portal.forms import choices
from portal.i18n import _, _l
from portal.models import ApiToken
from portal.security import get_scoped_or_404, tenant_select
from portal.web import is_htmx, render


class ApiTokenForm(FlaskForm):
    name = StringField(_l("Token name"), validators=[InputRequired(), Length(max=120)])
    reseller = SelectField(_l("Reseller"), validate_choice=True)


def _form() -> ApiTokenForm:
    form = ApiTokenForm()
    if current_user.is_operator:
        pairs = [("", "All resellers (operator token)")]
        pairs += [(r.id, r.name) for r in tokens_domain.resellers(db.session())]
        form.reseller.choices = choices(pairs)
    else:
        del form.reseller  # a reseller admin's tokens are always for their own reseller
    return form


def _page(form: ApiTokenForm, created=None, status: int = 200):
    tokens = db.session().scalars(tenant_select(ApiToken).order_by(ApiToken.id.desc())).all()
    return render(
        "admin/api_tokens.html",
        "admin/api_tokens_panel.html",
        status=status,
        form=form,
        tokens=tokens,
        created=created,
    )


@bp.get("/api-tokens")
def api_tokens():
    """Tokens of this admin's reseller (all for the operator)."""
    return _page(_form())


@bp.post("/api-tokens")
def create_api_token():
    """Create a token and show it once."""
    form = _form()
    if not form.validate_on_submit():
        return _page(form, status=200 if is_htmx() else 422)
    reseller_id = current_user.reseller_id
    if current_user.is_operator:
        reseller_id = int(form.reseller.data) if form.reseller.data else None
    session = db.session()
    try:
        created = tokens_domain.create_token(session, reseller_id=reseller_id, name=form.name.data)
    except ValidationFailed as exc:
        form.name.errors = [exc.message]
        return _page(form)
    audit.record(
        session,
        actor_user_id=current_user.id,
        reseller_id=reseller_id,
        action="api_token.create",
        object_type="api_token",
        object_id=created.token.id,
        after={"name": created.token.name, "prefix": created.token.prefix},
    )
    session.commit()
    return _page(_form(), created=created)


@bp.post("/api-tokens/<int:token_id>/revoke")
def revoke_api_token(token_id: int):
    """Revoke a token: the switch using it gets 401 from now on."""
    token = get_scoped_or_404(ApiToken, token_id, for_update=True)
    session = db.session()
    if tokens_domain.revoke_token(session, token=token):
        audit.record(
            session,
            actor_user_id=current_user.id,
            reseller_id=token.reseller_id,
            action="api_token.revoke",
            object_type="api_token",
            object_id=token.id,
            before={"prefix": token.prefix},
        )
        session.commit()
        flash(_("Token %(prefix)s… revoked.", prefix=token.prefix), "success")
    return redirect(url_for("admin.api_tokens"), code=303)
