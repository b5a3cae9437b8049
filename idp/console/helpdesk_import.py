"""The helpdesk console's import of schools and staff from Authentix (issue 8)."""
