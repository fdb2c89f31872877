"""Tessera devnet package."""
