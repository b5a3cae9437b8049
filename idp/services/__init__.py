"""Business rules. Services take plain values, raise domain exceptions and know nothing of HTTP."""
