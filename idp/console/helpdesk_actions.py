"""The helpdesk console's actions on one person, each with a reason (issue 8)."""
