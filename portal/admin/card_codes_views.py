"""Admin views: card_codes."""
