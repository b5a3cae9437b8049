"""The helpdesk console's page about one person (issue 8)."""
