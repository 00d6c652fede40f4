"""/api/v1 routes (filled in by the usage API work)."""
