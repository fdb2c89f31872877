"""serve_axon: publish a neuron's endpoint, under ServingRateLimit.

Ported from subtensor `subnets/serving.rs::do_serve_axon`. Loopback
addresses are accepted (the devnet is local by design).
"""

from __future__ import annotations

from typing import Any

from subnet.devnet.runtime.base import DispatchError, as_int, call
from subnet.devnet.runtime.chain import Runtime


def _valid_ip(ip_type: int, ip: int) -> bool:
    if ip == 0:
        return False
    if ip_type == 4:
        return ip < 2**32 and ip != 2**32 - 1
    return ip < 2**128 and ip != 2**128 - 1


@call("SubtensorModule", "serve_axon")
def serve_axon(
    rt: Runtime, origin: str, netuid: Any, version: Any, ip: Any, port: Any, ip_type: Any,
    protocol: Any, placeholder1: Any = 0, placeholder2: Any = 0, certificate: Any = None,
) -> None:
    rec = rt.subnet(netuid)
    netuid = rec["netuid"]
    if origin not in rec["hotkeys"]:
        raise DispatchError("HotKeyNotRegisteredInNetwork")
    ip_type, ip, port = as_int(ip_type, "ip_type"), as_int(ip, "ip"), as_int(port, "port")
    if ip_type not in (4, 6):
        raise DispatchError("InvalidIpType")
    if not _valid_ip(ip_type, ip):
        raise DispatchError("InvalidIpAddress")
    if not 0 < port < 65536:
        raise DispatchError("InvalidPort")
    prev = rt.store.get(f"axon:{netuid}:{origin}")
    limit = int(rec["hp"]["ServingRateLimit"])
    if prev is not None and limit and rt.block - int(prev["block"]) < limit:
        raise DispatchError(
            "ServingRateLimitExceeded", f"served at block {prev['block']}, limit {limit} blocks"
        )
    rt.store.put(
        f"axon:{netuid}:{origin}",
        {
            "block": rt.block,
            "version": as_int(version, "version"),
            "ip": ip,
            "port": port,
            "ip_type": ip_type,
            "protocol": as_int(protocol, "protocol"),
            "placeholder1": as_int(placeholder1, "placeholder1"),
            "placeholder2": as_int(placeholder2, "placeholder2"),
        },
    )
    rt.deposit_event("SubtensorModule", "AxonServed", {"netuid": netuid, "hotkey": origin})


@call("SubtensorModule", "serve_axon_tls")
def serve_axon_tls(rt: Runtime, origin: str, **params: Any) -> None:
    serve_axon(rt, origin, **params)
