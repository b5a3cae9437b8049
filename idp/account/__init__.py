"""The signed-in person's own account pages."""
