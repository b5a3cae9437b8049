"""Sign-in, sign-out, invitation, forgot-password and reset journeys (DESIGN.md §4)."""
