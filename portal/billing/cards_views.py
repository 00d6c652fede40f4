"""Billing views: cards."""
