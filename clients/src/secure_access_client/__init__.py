"""Secure Access client library for relying services.

Installable on its own (``pip install ./clients``) and never imports the provider (``idp``).
The Flask extension, WSGI middleware and test helpers arrive with the client-library issue.
"""

__version__ = "0.1.0"
