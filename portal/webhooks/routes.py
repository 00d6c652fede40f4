"""POST /webhooks/stripe (filled in by the Stripe work)."""
