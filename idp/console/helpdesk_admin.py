"""The helpdesk console's pages for helpdesk admins (issue 8): services, organisations and
helpdesk staff."""
