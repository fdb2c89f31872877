"""Tessera storage package."""
