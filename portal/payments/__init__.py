"""Payments: cards and card payments through Stripe (only gateway.py imports `stripe`)."""
