"""The helpdesk console's search: one box for people and organisations (issue 8)."""
