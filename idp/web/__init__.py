"""Cross-cutting HTTP concerns: request ids, security headers, error pages, health, start page."""
