"""The helpdesk console's MFA reset: identity check, and four-eyes approval (issue 8)."""
