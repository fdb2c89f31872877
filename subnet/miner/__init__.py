"""Tessera miner package."""
