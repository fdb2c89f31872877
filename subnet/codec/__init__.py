"""Tessera codec package."""
