"""Admin views: catalogue."""
