"""Send email through GOV.UK Notify, the government's shared messaging platform.

Notify holds the wording of each message as a template of its own, with an id; we send the
template id for the message name (setting ``notify_template_ids``) and the personalisation
values, and Notify fills in its ``((placeholders))``. Our own rendered subject and body are
not sent: Notify's copy is what people read, so the two must be kept in step by hand.

Notify's answer decides retry or give up (https://docs.notifications.service.gov.uk/python.html):
400 means this message can never be sent as it is (a bad address, a missing placeholder); 429
(rate limit), 5xx and connection failures are outages to wait out. 403 (a bad or revoked API
key) is our configuration, not the message: it is retried, so fixing the key delivers it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from notifications_python_client.errors import APIError
from notifications_python_client.notifications import NotificationsAPIClient

from idp.services.mail.base import EmailMessage, MailDeliveryError, PermanentMailError

NOTIFY_API_URL = "https://api.notifications.service.gov.uk"
TIMEOUT_SECONDS = 20


class NotifyMailer:
    def __init__(
        self,
        api_key: str,
        template_ids: Mapping[str, str],
        *,
        base_url: str = NOTIFY_API_URL,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.api_key = api_key
        self.template_ids = dict(template_ids)
        self.base_url = base_url
        self.timeout = timeout
        # The Notify client is documented as not thread-safe: one per thread.
        self._local = threading.local()

    def _client(self) -> NotificationsAPIClient:
        client: NotificationsAPIClient | None = getattr(self._local, "client", None)
        if client is None:
            # The client library has no type hints; these calls are checked by the tests.
            client = NotificationsAPIClient(  # type: ignore[no-untyped-call]
                self.api_key, base_url=self.base_url, timeout=self.timeout
            )
            self._local.client = client
        return client

    def send(self, message: EmailMessage) -> None:
        template_id = self.template_ids.get(message.template)
        if not template_id:
            # Configuration, not the message: retry, so adding the id delivers it.
            raise MailDeliveryError(f"no Notify template id for {message.template!r}")
        try:
            self._client().send_email_notification(  # type: ignore[no-untyped-call]
                email_address=message.to,
                template_id=template_id,
                personalisation=dict(message.personalisation),
                reference=message.reference,
            )
        except APIError as error:
            status = error.status_code
            # Notify's error text names the problem ("email_address Not a valid email
            # address") without echoing personalisation, so it is safe to keep.
            detail = str(error.message)[:200]
            if status == 400:
                raise PermanentMailError(f"Notify 400: {detail}") from None
            raise MailDeliveryError(f"Notify {status}: {detail}") from None
