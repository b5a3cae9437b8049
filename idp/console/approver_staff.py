"""An approver's pages for their organisation's people (issue 7): list, invite, change access,
remove, promote or demote."""
