"""API keys, their scopes, who is asking, and rate limits: no web framework here."""
