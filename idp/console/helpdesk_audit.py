"""The helpdesk console's audit log: browse, filter, export, monthly report (issue 8)."""
