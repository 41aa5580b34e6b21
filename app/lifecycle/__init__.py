"""Starting, readiness, and orderly shutdown."""
