"""Typed failures of domain operations; views turn them into form messages."""

from __future__ import annotations


class DomainError(Exception):
    """A refusal with a message for the person (and optionally the form field it concerns)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    pass


class ValidationFailed(DomainError):
    pass


class PermissionDenied(DomainError):
    pass
