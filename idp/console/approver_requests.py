"""An approver's pages for access requests: list, approve, reject (issue 7)."""
