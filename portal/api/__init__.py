"""The machine API for the switch: bearer tokens, JSON, exempt from CSRF."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from portal.api import routes  # noqa: E402,F401
