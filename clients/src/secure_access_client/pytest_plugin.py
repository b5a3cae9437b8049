"""A pytest plugin for services: ``pytest_plugins = ["secure_access_client.pytest_plugin"]``.

It is not registered automatically (no ``pytest11`` entry point), so installing the library
never changes another project's test run. It provides one fixture, ``secure_access``: a
:class:`~secure_access_client.testing.FakeProvider` installed on the service's own ``app``
fixture (a Flask app with ``SecureAccess``, or a ``SecureAccessMiddleware``).
"""

from __future__ import annotations

from typing import Any

import pytest

from secure_access_client.testing import FakeProvider


@pytest.fixture
def secure_access(app: Any) -> FakeProvider:
    """Sign fake people in (``secure_access.sign_in(client, roles=[...])``) and send the app
    back-channel logouts (``secure_access.send_backchannel_logout(client, user)``)."""
    return FakeProvider().install(app)
