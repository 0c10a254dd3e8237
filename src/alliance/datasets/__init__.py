"""Bundled datasets (placeholder)."""
