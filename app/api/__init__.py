"""The HTTP API: one router per resource, over the services."""
