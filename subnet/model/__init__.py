"""Tessera model package."""
