"""Snapshot of a subnet's on-chain standing, read through the bittensor SDK client.

Why: a run report must show what the chain actually paid (incentive,
dividends, emission, stake and the weights validators set), not what the
validator believed it set. Everything is read with the same SDK client the
neurons use (``sub.subnets.metagraph`` and ``sub.weights.weights``), so the
snapshot works against the devnet and a real network alike.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from subnet.errors import ChainError


def _amount(balance: Any) -> float | None:
    """Balance -> float in its own unit (TAO or the subnet's alpha)."""
    if balance is None:
        return None
    amount = getattr(balance, "amount", None)
    return float(amount) if amount is not None else float(balance)


def _rao(balance: Any) -> int | None:
    return None if balance is None else int(getattr(balance, "rao", 0))


def snapshot_metagraph(sub: Any, netuid: int) -> dict[str, Any]:
    """Plain-JSON dict of the metagraph and weight matrix for ``netuid`` via client ``sub``."""
    mg = sub.subnets.metagraph(netuid)
    if mg is None:
        raise ChainError(f"subnet {netuid} does not exist on this chain")
    neurons = []
    for n in mg.neurons:
        neurons.append(
            {
                "uid": n.uid,
                "hotkey": n.hotkey,
                "coldkey": n.coldkey,
                "active": bool(n.active),
                "validator_permit": bool(n.validator_permit),
                "last_update": int(n.last_update or 0),
                "block_at_registration": int(n.block_at_registration or 0),
                "incentive": float(n.incentive or 0.0),
                "dividends": float(n.dividends or 0.0),
                "consensus": float(n.consensus or 0.0),
                "trust": float(n.trust or 0.0),
                "rank": float(n.rank or 0.0),
                "emission": _amount(n.emission),
                "emission_rao": _rao(n.emission),
                "stake": _amount(n.total_stake),
                "alpha_stake": _amount(n.alpha_stake),
                "axon": n.axon,
                "commitment": (n.commitment.value if n.commitment is not None else None),
            }
        )
    weights: dict[str, dict[str, float]] | None
    weights_error = None
    try:
        rows = sub.weights.weights(netuid)
        weights = {str(v): {str(m): float(w) for m, w in row.items()} for v, row in (rows or {}).items()}
    except Exception as exc:  # the snapshot is still useful without the matrix
        logger.warning("weights read failed for netuid {}: {}", netuid, exc)
        weights, weights_error = None, f"{type(exc).__name__}: {exc}"
    return {
        "netuid": mg.netuid,
        "block": mg.block,
        "tempo": mg.tempo,
        "last_step": mg.last_step,
        "num_uids": mg.num_uids,
        "max_uids": mg.max_uids,
        "owner_hotkey": mg.owner_hotkey,
        "neurons": neurons,
        "weights": weights,
        "weights_error": weights_error,
    }


def snapshot_chain(network: str, netuid: int) -> dict[str, Any]:
    """Open a client for ``network`` (``devnet+ws://...``, ``finney`` ...) and snapshot ``netuid``."""
    from subnet.chain import make_subtensor  # lazy: the chain package pulls in the SDK

    sub = make_subtensor(network)
    try:
        snap = snapshot_metagraph(sub, netuid)
    finally:
        close = getattr(sub, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # closing must not hide the snapshot
                logger.debug("closing subtensor client failed: {}", exc)
    snap["network"] = network
    return snap
