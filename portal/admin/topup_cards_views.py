"""Admin views: topup_cards."""
