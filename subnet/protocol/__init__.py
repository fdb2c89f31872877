"""Tessera protocol package."""
