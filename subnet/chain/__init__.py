"""Tessera chain package."""
