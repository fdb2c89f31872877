"""Tessera telemetry package."""
