"""The durable store's database: URL, tables, engine and migrations (no web framework here)."""
