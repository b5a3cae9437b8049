"""The helpdesk console's bulk actions on up to 100 people (issue 8)."""
