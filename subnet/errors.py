"""Error types shared across Tessera.

One root (`SubnetError`) so callers can catch everything Tessera raises, and a
stable `ErrorCode` so logs, tests and metrics name failures the same way.
Late or malformed miner work is a scored outcome, not an exception; these are
for refusing input at a boundary (decoding, config, chain, storage).
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    CONFIG = "config"
    CHAIN = "chain"
    STORAGE = "storage"
    ARTIFACT = "artifact"
    DATA = "data"
    MODEL = "model"
    PROTOCOL = "protocol"


class SubnetError(Exception):
    """Root of every error Tessera raises on purpose."""

    code: ErrorCode = ErrorCode.CONFIG

    def __init__(self, message: str, *, remediation: str | None = None) -> None:
        super().__init__(message)
        self.remediation = remediation

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (hint: {self.remediation})" if self.remediation else base


class ConfigError(SubnetError):
    code = ErrorCode.CONFIG


class ChainError(SubnetError):
    code = ErrorCode.CHAIN


class StorageError(SubnetError):
    code = ErrorCode.STORAGE


class DataError(SubnetError):
    code = ErrorCode.DATA


class ModelError(SubnetError):
    code = ErrorCode.MODEL


class ProtocolError(SubnetError):
    code = ErrorCode.PROTOCOL
