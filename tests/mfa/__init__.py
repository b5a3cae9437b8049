"""Multi-factor authentication: section D of the security requirements, policy, pages."""
