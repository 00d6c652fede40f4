"""Billing views: redeem."""
