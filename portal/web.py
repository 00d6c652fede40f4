"""View helpers: render a full page or, for an HTMX request, just its fragment."""

from __future__ import annotations

from flask import render_template
from htmx_flask import request


def is_htmx() -> bool:
    # A boosted or history-restore request wants the whole page.
    return (
        bool(request.htmx)
        and not request.htmx.boosted
        and not (request.htmx.history_restore_request)
    )


def render(page_template: str, fragment_template: str, status: int = 200, **context):
    """Render the fragment for HTMX requests and the page (which includes it) otherwise."""
    template = fragment_template if is_htmx() else page_template
    return render_template(template, **context), status
