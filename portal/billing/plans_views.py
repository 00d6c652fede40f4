"""Billing views: plans."""
