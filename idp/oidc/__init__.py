"""The OpenID Connect provider: discovery, signing keys, and (later) the Authlib endpoints.

- :mod:`idp.oidc.keys`: signing keys, rotation with overlap and the in-process key ring
  (OIDC Core §10.1.1; security-requirements H01, H04, L02).
- :mod:`idp.oidc.discovery`: ``/.well-known/openid-configuration`` and ``/.well-known/jwks.json``
  (OIDC Discovery 1.0 §3-§4; RFC 8414; security-requirements H05, E08).

Client registration rules live one floor down, in :mod:`idp.services.clients`.
"""
