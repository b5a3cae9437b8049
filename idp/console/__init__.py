"""The helpdesk console (``/helpdesk``) and the approvers' pages (``/organisations``).

Both are staff areas inside the provider. Each area has one blueprint (:mod:`.blueprints`)
and one guard (:mod:`.guards`); each page module adds its routes to its area's blueprint, so
the guard of every URL is visible in one place and a route-enumeration test can prove that no
console URL is left unguarded.

Business rules (who may change whom, what an action does, what is audited) live in
``idp/services/``; these modules only turn requests into service calls and results into pages.
"""
