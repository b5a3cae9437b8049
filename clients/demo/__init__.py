"""Six demo departmental services that sign people in with Secure Access.

Each is a small Flask app built by :func:`demo.app.create_app` from one row of
:data:`demo.services.SERVICES`, using nothing but the public API of ``secure_access_client``.
They are registered with the provider by ``make seed`` (``idp/services/demo.py``), so that a
person can open any of them, sign in once, move between them without signing in again, and
sign out of one to be signed out of all. ``make demo`` (or ``make run``) serves them on
http://127.0.0.1:5101 to :5106.
"""
