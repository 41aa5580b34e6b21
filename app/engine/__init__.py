"""The check engine: fetches URLs, turns every outcome into a result; knows no HTTP API."""
