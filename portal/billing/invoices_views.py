"""Billing views: invoices."""
