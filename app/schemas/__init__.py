"""Public data shapes: what the API accepts and returns, documented for the OpenAPI page."""
