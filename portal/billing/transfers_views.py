"""Billing views: transfers."""
