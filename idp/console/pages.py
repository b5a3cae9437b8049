"""Import every console page module, so each adds its routes to its blueprint.

A new console page module is added here (and nowhere else); tests/console enumerates the
routes this registers and checks each one's guard.
"""

from idp.console import (  # noqa: F401 (imported for their routes)
    approver_requests,
    approver_staff,
    helpdesk_actions,
    helpdesk_admin,
    helpdesk_admin_orgs,
    helpdesk_admin_staff,
    helpdesk_audit,
    helpdesk_bulk,
    helpdesk_home,
    helpdesk_import,
    helpdesk_mfa_reset,
    helpdesk_search,
    helpdesk_user,
)
