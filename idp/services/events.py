"""Domain events other rooms react to, without the service layer importing them.

The OIDC room subscribes to ``sessions_ended`` to send back-channel logout tokens; the
services only announce that sessions ended. Receivers run inside the caller's unit of work,
so anything they enqueue commits (or not) with the action.
"""

from __future__ import annotations

from blinker import Namespace

_events = Namespace()

#: sender: the user's sub; kwargs: ``sessions`` (list of SsoSession), ``reason`` (str).
sessions_ended = _events.signal("sessions-ended")

#: sender: the user's sub; kwargs: ``user_id`` (int), ``service_id`` (int). The person withdrew
#: their consent to that service (:func:`idp.services.consents.withdraw`); the OIDC room revokes
#: their refresh tokens there (F11, ASVS 10.7.3).
consent_withdrawn = _events.signal("consent-withdrawn")
