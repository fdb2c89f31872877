"""Tessera validator package."""
