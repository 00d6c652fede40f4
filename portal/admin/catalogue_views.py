"""Admin views: customer classes, and the operator's catalogue (resellers and their admins,
plans and their licenses, add-ons, top-up products) and server settings.
Each is a plain list + form page; deleting something in use is refused with a message.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from portal import catalogue, db
from portal.admin import bp
from portal.admin.catalogue_forms import (
    AddOnForm,
    CustomerClassForm,
    PlanForm,
    PlanLicenseForm,
    ResellerAdminForm,
    ResellerForm,
    SettingsForm,
    TopupProductForm,
)
from portal.admin.customers_views import _actor, _attach_error, _int_or_none, _reseller_choices
from portal.domain import DomainError
from portal.i18n import _
from portal.models import AddOn, CustomerClass, Plan, PlanLicense, Reseller, TopupProduct
from portal.money import format_plain
from portal.security import get_scoped_or_404, operator_required, tenant_select


def _save(form, item, values: dict, message: str, next_url: str | None = None):
    """Save through the domain; a redirect on success, None (errors on the form) otherwise."""
    try:
        catalogue.save_item(db.session(), item=item, values=values, actor=_actor())
    except DomainError as exc:
        db.session().rollback()
        _attach_error(form, exc)
        return None
    flash(message, "success")
    return redirect(next_url or request.path, 303)


def _delete(item, back_url: str, done_url: str, message: str):
    try:
        catalogue.delete_item(db.session(), item=item, actor=_actor())
    except DomainError as exc:
        db.session().rollback()
        flash(exc.message, "error")
        return redirect(back_url, 303)
    flash(message, "success")
    return redirect(done_url, 303)


def _page(template: str, status_if_post: int = 422, **context):
    status = status_if_post if request.method == "POST" else 200
    return render_template(template, **context), status


# --- Customer classes (reseller admins: their own; the operator: all) -----------------------


def _class_values(form: CustomerClassForm) -> dict:
    return {
        "name": form.name.data.strip(),
        "transfers_allowed": form.transfers_allowed.data,
        "max_increase_minor": form.max_increase.minor,
        "max_increase_percent": form.max_increase_percent.data,
        "max_increase_days": form.max_increase_days.data,
        "default_warning_thresholds": (form.default_warning_thresholds.data or "").strip(),
    }


@bp.route("/customer-classes", methods=["GET", "POST"])
def customer_classes():
    """Customer classes and a form to add one."""
    form = CustomerClassForm()
    form.reseller_id.choices = _reseller_choices()
    reseller = db.session().get(Reseller, _int_or_none(form.reseller_id.data) or 0)
    form.currency = reseller.currency if reseller else "GBP"
    if request.method == "POST" and form.validate_on_submit():
        if reseller is None or not (
            current_user.is_operator or reseller.id == current_user.reseller_id
        ):
            abort(404)
        item = CustomerClass(reseller_id=reseller.id)
        done = _save(form, item, _class_values(form), "Customer class created.")
        if done:
            return done
    classes = db.session().scalars(tenant_select(CustomerClass).order_by(CustomerClass.name))
    return _page("admin/catalogue/customer_classes.html", form=form, classes=list(classes))


@bp.route("/customer-classes/<int:class_id>", methods=["GET", "POST"])
def customer_class(class_id: int):
    """Edit a customer class."""
    item = get_scoped_or_404(CustomerClass, class_id)
    form = CustomerClassForm(formdata=request.form if request.method == "POST" else None, obj=item)
    form.currency = item.reseller.currency
    if request.method == "GET" and item.max_increase_minor is not None:
        form.max_increase.data = format_plain(item.max_increase_minor, form.currency)
    del form.reseller_id
    if request.method == "POST" and form.validate_on_submit():
        done = _save(
            form,
            item,
            _class_values(form),
            "Customer class saved.",
            url_for("admin.customer_classes"),
        )
        if done:
            return done
    return _page(
        "admin/catalogue/edit.html",
        form=form,
        title=_("Customer class %(name)s", name=item.name),
        delete_url=url_for("admin.customer_class_delete", class_id=item.id),
        back_url=url_for("admin.customer_classes"),
    )


@bp.post("/customer-classes/<int:class_id>/delete")
def customer_class_delete(class_id: int):
    item = get_scoped_or_404(CustomerClass, class_id)
    return _delete(
        item,
        url_for("admin.customer_class", class_id=item.id),
        url_for("admin.customer_classes"),
        "Customer class deleted.",
    )


# --- Resellers and their admins (operator) ------------------------------------------------------


@bp.route("/resellers", methods=["GET", "POST"])
@operator_required
def resellers():
    """Resellers and a form to add one."""
    form = ResellerForm()
    if form.validate_on_submit():
        values = {"name": form.name.data.strip(), "currency": form.currency_code.data}
        done = _save(form, Reseller(), values, "Reseller created.")
        if done:
            return done
    rows = db.session().scalars(select(Reseller).order_by(Reseller.name))
    return _page("admin/catalogue/resellers.html", form=form, resellers=list(rows))


@bp.route("/resellers/<int:reseller_id>", methods=["GET", "POST"])
@operator_required
def reseller(reseller_id: int):
    """Edit a reseller; list and add its admins."""
    item = db.session().get(Reseller, reseller_id) or abort(404)
    form = ResellerForm(formdata=request.form if request.method == "POST" else None, obj=item)
    if request.method == "GET":
        form.currency_code.data = item.currency
    if request.method == "POST" and form.validate_on_submit():
        values = {"name": form.name.data.strip(), "currency": form.currency_code.data}
        done = _save(form, item, values, "Reseller saved.")
        if done:
            return done
    return _reseller_page(item, form, ResellerAdminForm(formdata=None))


def _reseller_page(item: Reseller, form, admin_form):
    return _page(
        "admin/catalogue/reseller.html",
        form=form,
        admin_form=admin_form,
        item=item,
        admins=catalogue.reseller_admins(db.session(), item),
        title=_("Reseller %(name)s", name=item.name),
        delete_url=url_for("admin.reseller_delete", reseller_id=item.id),
        back_url=url_for("admin.resellers"),
    )


@bp.post("/resellers/<int:reseller_id>/admins")
@operator_required
def reseller_admin_new(reseller_id: int):
    """Create an admin user for a reseller."""
    item = db.session().get(Reseller, reseller_id) or abort(404)
    admin_form = ResellerAdminForm()
    if admin_form.validate_on_submit():
        try:
            catalogue.create_reseller_admin(
                db.session(),
                reseller=item,
                actor=_actor(),
                email=admin_form.email.data,
                name=admin_form.name.data or "",
                password=admin_form.password.data,
            )
        except DomainError as exc:
            db.session().rollback()
            _attach_error(admin_form, exc)
        else:
            flash(_("Reseller admin created."), "success")
            return redirect(url_for("admin.reseller", reseller_id=item.id), 303)
    return _reseller_page(item, ResellerForm(formdata=None, obj=item), admin_form)


@bp.post("/resellers/<int:reseller_id>/delete")
@operator_required
def reseller_delete(reseller_id: int):
    item = db.session().get(Reseller, reseller_id) or abort(404)
    return _delete(
        item,
        url_for("admin.reseller", reseller_id=item.id),
        url_for("admin.resellers"),
        "Reseller deleted.",
    )


# --- Plans and their licenses (operator) ----------------------------------------------------


def _plan_values(form: PlanForm) -> dict:
    return {
        "name": form.name.data.strip(),
        "price_minor": form.price.minor,
        "currency": form.currency_code.data,
        "sort_order": form.sort_order.data or 0,
        "active": form.active.data,
    }


@bp.route("/plans", methods=["GET", "POST"])
@operator_required
def plans():
    """Plans and a form to add one."""
    form = PlanForm()
    if form.validate_on_submit():
        done = _save(form, Plan(), _plan_values(form), "Plan created.")
        if done:
            return done
    rows = db.session().scalars(select(Plan).order_by(Plan.sort_order, Plan.id))
    return _page("admin/catalogue/plans.html", form=form, plans=list(rows))


@bp.route("/plans/<int:plan_id>", methods=["GET", "POST"])
@operator_required
def plan(plan_id: int):
    """Edit a plan; its licenses."""
    item = db.session().get(Plan, plan_id) or abort(404)
    form = PlanForm(formdata=request.form if request.method == "POST" else None, obj=item)
    if request.method == "GET":
        form.price.data = format_plain(item.price_minor, item.currency)
        form.currency_code.data = item.currency
    if request.method == "POST" and form.validate_on_submit():
        done = _save(form, item, _plan_values(form), "Plan saved.")
        if done:
            return done
    return _plan_page(item, form, PlanLicenseForm(formdata=None))


def _plan_page(item: Plan, form, license_form):
    return _page(
        "admin/catalogue/plan.html",
        form=form,
        license_form=license_form,
        item=item,
        title=_("Plan %(name)s", name=item.name),
        delete_url=url_for("admin.plan_delete", plan_id=item.id),
        back_url=url_for("admin.plans"),
    )


@bp.post("/plans/<int:plan_id>/licenses")
@operator_required
def plan_license_new(plan_id: int):
    """Add a license (service limit) to a plan."""
    item = db.session().get(Plan, plan_id) or abort(404)
    license_form = PlanLicenseForm()
    if license_form.validate_on_submit():
        values = {
            "service": license_form.service.data,
            "label": license_form.label.data.strip(),
            "limit": license_form.limit.data,
            "sort_order": license_form.sort_order.data or 0,
        }
        next_url = url_for("admin.plan", plan_id=item.id)
        done = _save(license_form, PlanLicense(plan_id=item.id), values, "License added.", next_url)
        if done:
            return done
    form = PlanForm(formdata=None, obj=item)
    form.price.data = format_plain(item.price_minor, item.currency)
    return _plan_page(item, form, license_form)


@bp.post("/plans/<int:plan_id>/licenses/<int:license_id>/delete")
@operator_required
def plan_license_delete(plan_id: int, license_id: int):
    item = db.session().get(PlanLicense, license_id)
    if item is None or item.plan_id != plan_id:
        abort(404)
    back = url_for("admin.plan", plan_id=plan_id)
    return _delete(item, back, back, "License removed.")


@bp.post("/plans/<int:plan_id>/delete")
@operator_required
def plan_delete(plan_id: int):
    item = db.session().get(Plan, plan_id) or abort(404)
    return _delete(
        item, url_for("admin.plan", plan_id=item.id), url_for("admin.plans"), "Plan deleted."
    )


# --- Add-ons (operator) -------------------------------------------------------------------------


def _addon_values(form: AddOnForm) -> dict:
    return {
        "service": form.service.data,
        "label": form.label.data.strip(),
        "units": form.units.data,
        "price_minor": form.price.minor,
        "currency": form.currency_code.data,
        "active": form.active.data,
    }


@bp.route("/addons", methods=["GET", "POST"])
@operator_required
def addons():
    """Add-ons and a form to add one."""
    form = AddOnForm()
    if form.validate_on_submit():
        done = _save(form, AddOn(), _addon_values(form), "Add-on created.")
        if done:
            return done
    rows = db.session().scalars(select(AddOn).order_by(AddOn.service, AddOn.id))
    return _page("admin/catalogue/addons.html", form=form, addons=list(rows))


@bp.route("/addons/<int:addon_id>", methods=["GET", "POST"])
@operator_required
def addon(addon_id: int):
    """Edit an add-on."""
    item = db.session().get(AddOn, addon_id) or abort(404)
    form = AddOnForm(formdata=request.form if request.method == "POST" else None, obj=item)
    if request.method == "GET":
        form.price.data = format_plain(item.price_minor, item.currency)
        form.currency_code.data = item.currency
    if request.method == "POST" and form.validate_on_submit():
        done = _save(form, item, _addon_values(form), "Add-on saved.", url_for("admin.addons"))
        if done:
            return done
    return _page(
        "admin/catalogue/edit.html",
        form=form,
        title=_("Add-on %(label)s", label=item.label),
        delete_url=url_for("admin.addon_delete", addon_id=item.id),
        back_url=url_for("admin.addons"),
    )


@bp.post("/addons/<int:addon_id>/delete")
@operator_required
def addon_delete(addon_id: int):
    item = db.session().get(AddOn, addon_id) or abort(404)
    return _delete(
        item, url_for("admin.addon", addon_id=item.id), url_for("admin.addons"), "Add-on deleted."
    )


# --- Top-up products (operator) -----------------------------------------------------------------


def _product_values(form: TopupProductForm) -> dict:
    return {
        "label": (form.label.data or "").strip(),
        "amount_minor": form.amount.minor,
        "currency": form.currency_code.data,
        "active": form.active.data,
    }


@bp.route("/topup-products", methods=["GET", "POST"])
@operator_required
def topup_products():
    """Top-up products (the amounts customers can buy) and a form to add one."""
    form = TopupProductForm()
    if form.validate_on_submit():
        done = _save(form, TopupProduct(), _product_values(form), "Top-up product created.")
        if done:
            return done
    rows = db.session().scalars(
        select(TopupProduct).order_by(TopupProduct.currency, TopupProduct.amount_minor)
    )
    return _page("admin/catalogue/topup_products.html", form=form, products=list(rows))


@bp.route("/topup-products/<int:product_id>", methods=["GET", "POST"])
@operator_required
def topup_product(product_id: int):
    """Edit a top-up product."""
    item = db.session().get(TopupProduct, product_id) or abort(404)
    form = TopupProductForm(formdata=request.form if request.method == "POST" else None, obj=item)
    if request.method == "GET":
        form.amount.data = format_plain(item.amount_minor, item.currency)
        form.currency_code.data = item.currency
    if request.method == "POST" and form.validate_on_submit():
        next_url = url_for("admin.topup_products")
        done = _save(form, item, _product_values(form), "Top-up product saved.", next_url)
        if done:
            return done
    return _page(
        "admin/catalogue/edit.html",
        form=form,
        title=_("Top-up product %(label)s", label=item.label),
        delete_url=url_for("admin.topup_product_delete", product_id=item.id),
        back_url=url_for("admin.topup_products"),
    )


@bp.post("/topup-products/<int:product_id>/delete")
@operator_required
def topup_product_delete(product_id: int):
    item = db.session().get(TopupProduct, product_id) or abort(404)
    return _delete(
        item,
        url_for("admin.topup_product", product_id=item.id),
        url_for("admin.topup_products"),
        "Top-up product deleted.",
    )


# --- Server settings (operator) -------------------------------------------------------------------


@bp.route("/settings", methods=["GET", "POST"])
@operator_required
def settings():
    """Server default currency (Zero Priority Charging preferences) and the invoice tax rate."""
    current = catalogue.current_settings(db.session())
    form = SettingsForm(
        formdata=request.form if request.method == "POST" else None,
        default_currency=current["default_currency"],
        tax_rate=catalogue.format_tax_rate(current["tax_rate_bp"]),
        invoice_net_days=int(current["invoice_net_days"]),
        invoice_reminder_days=current["invoice_reminder_days"],
    )
    if request.method == "POST" and form.validate_on_submit():
        try:
            catalogue.update_settings(
                db.session(),
                default_currency=form.default_currency.data,
                tax_rate_bp=catalogue.parse_tax_rate(form.tax_rate.data),
                actor=_actor(),
                invoice_net_days=form.invoice_net_days.data,
                invoice_reminder_days=form.invoice_reminder_days.data,
            )
        except DomainError as exc:
            db.session().rollback()
            _attach_error(form, exc)
        else:
            flash(_("Settings saved."), "success")
            return redirect(url_for("admin.settings"), 303)
    return _page("admin/catalogue/settings.html", form=form)
