"""Storage and runtime-API reads in the SDK's decoded shapes.

Maps `query(module, item, params)`, `query_map` and `runtime_call` onto the
devnet state so that the SDK's typed reads (metagraph, balances, weights,
hyperparameters, commitments, stake, epochs, swap quotes) decode unchanged.
Item names are subtensor's. A `Reader` answers against one runtime's state:
the node builds one over the head, and one over a `StoreAt` view for reads
pinned to an older block hash (`Node.reader_at`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from subnet.devnet.config import GLOBAL_HYPERPARAMETERS, RAO_PER_TAO, SPEC_VERSION
from subnet.devnet.runtime import Runtime
from subnet.devnet.runtime.epoch import next_epoch_start_block, pending_emission

MEV_KEY_BYTES = 1184
_LIST_FIELDS = {
    "LastUpdate": "last_update",
    "ValidatorPermit": "validator_permit",
    "Active": "active",
    "Consensus": "consensus",
    "Incentive": "incentive",
    "Dividends": "dividends",
    "ValidatorTrust": "validator_trust",
    "Emission": "emission",
    "Rank": "rank",
    "Trust": "trust",
    "PruningScores": "pruning_score",
}
_SUBNET_FIELDS = {
    "SubnetOwner": "owner",
    "SubnetOwnerHotkey": "owner_hotkey",
    "NetworkRegisteredAt": "registered_at",
    "SubnetLocked": "locked",
    "FirstEmissionBlockNumber": "first_emission_block",
    "LastEpochBlock": "last_epoch_block",
    "LastMechansimStepBlock": "last_epoch_block",
}


def mev_dummy_key() -> bytes:
    """A fixed 1184-byte 'ML-KEM' key: the SDK can encrypt to it, nobody decrypts."""
    out = b""
    counter = 0
    while len(out) < MEV_KEY_BYTES:
        out += hashlib.blake2b(b"tessera-devnet-mev" + bytes([counter]), digest_size=64).digest()
        counter += 1
    return out[:MEV_KEY_BYTES]


class Reader:
    """Answers reads against a runtime's current state."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    # -- storage -------------------------------------------------------------

    def query(self, module: str, item: str, params: list | None) -> Any:
        params = list(params or [])
        fn = getattr(self, f"_q_{module}_{item}", None)
        if fn is not None:
            return fn(*params)
        if module == "SubtensorModule":
            return self._subtensor_item(item, params)
        return None

    def query_map(self, module: str, item: str, params: list | None) -> list[tuple[Any, Any]]:
        params = list(params or [])
        fn: Callable | None = getattr(self, f"_m_{module}_{item}", None)
        if fn is not None:
            return list(fn(*params))
        if module == "SubtensorModule" and not params:
            # Per-netuid items as maps over every subnet.
            return [
                (netuid, value)
                for netuid in self.rt.netuids()
                if (value := self._subtensor_item(item, [netuid])) is not None
            ]
        return []

    def _subnet(self, netuid: Any) -> dict | None:
        try:
            return self.rt.store.get(f"net:{int(netuid)}")
        except (TypeError, ValueError):
            return None

    def _subtensor_item(self, item: str, params: list) -> Any:
        rt = self.rt
        if not params:
            if item in GLOBAL_HYPERPARAMETERS:
                return rt.global_param(item)
            hp = rt.store.get("meta:hparams") or {}
            if item in hp:
                return hp[item]
            if item == "TotalNetworks":
                return len(rt.netuids())
            return None
        rec = self._subnet(params[0])
        if rec is None:
            return False if item == "NetworksAdded" else None
        if len(params) == 1:
            if item == "BurnIncreaseMult":
                return {"bits": _u64f64_bits(rec["hp"].get(item, 1.26))}
            if item in rec["hp"] and item not in GLOBAL_HYPERPARAMETERS:
                return rec["hp"][item]
            if item in _SUBNET_FIELDS:
                return rec[_SUBNET_FIELDS[item]]
            if item in _LIST_FIELDS:
                return list(rec[_LIST_FIELDS[item]])
            return _subnet_scalar(rt, rec, item)
        return None

    # System / Timestamp / MevShield
    def _q_System_Account(self, ss58: str) -> dict:
        acct = self.rt.account(ss58)
        return {
            "nonce": int(acct.get("nonce", 0)),
            "consumers": 0,
            "providers": 1,
            "sufficients": 0,
            "data": {"free": int(acct["free"]), "reserved": 0, "frozen": 0, "flags": 0},
        }

    def _q_System_Number(self) -> int:
        return self.rt.block

    def _q_Timestamp_Now(self) -> int:
        return self.rt.timestamp_ms

    def _q_MevShield_NextKey(self) -> str:
        return "0x" + mev_dummy_key().hex()

    # SubtensorModule double maps
    def _q_SubtensorModule_Uids(self, netuid: Any, hotkey: str) -> int | None:
        rec = self._subnet(netuid)
        if rec is None or hotkey not in rec["hotkeys"]:
            return None
        return rec["hotkeys"].index(hotkey)

    def _m_SubtensorModule_Uids(self, netuid: Any) -> list:
        rec = self._subnet(netuid)
        return [(hk, uid) for uid, hk in enumerate(rec["hotkeys"])] if rec else []

    def _q_SubtensorModule_Keys(self, netuid: Any, uid: Any) -> str | None:
        rec = self._subnet(netuid)
        if rec is None or not 0 <= int(uid) < len(rec["hotkeys"]):
            return None
        return rec["hotkeys"][int(uid)]

    def _m_SubtensorModule_Keys(self, netuid: Any) -> list:
        rec = self._subnet(netuid)
        return list(enumerate(rec["hotkeys"])) if rec else []

    def _q_SubtensorModule_BlockAtRegistration(self, netuid: Any, uid: Any) -> int | None:
        rec = self._subnet(netuid)
        if rec is None or not 0 <= int(uid) < len(rec["hotkeys"]):
            return None
        return rec["block_at_registration"][int(uid)]

    def _q_SubtensorModule_Owner(self, hotkey: str) -> str | None:
        return self.rt.hotkey_owner(hotkey)

    def _q_SubtensorModule_OwnedHotkeys(self, coldkey: str) -> list:
        return list(self.rt.store.get(f"ck:{coldkey}") or [])

    def _q_SubtensorModule_IsNetworkMember(self, hotkey: str, netuid: Any) -> bool:
        return int(netuid) in (self.rt.store.get(f"member:{hotkey}") or [])

    def _m_SubtensorModule_IsNetworkMember(self, hotkey: str) -> list:
        return [(n, True) for n in self.rt.store.get(f"member:{hotkey}") or []]

    def _q_SubtensorModule_Axons(self, netuid: Any, hotkey: str) -> dict | None:
        return self.rt.store.get(f"axon:{int(netuid)}:{hotkey}")

    def _m_SubtensorModule_Axons(self, netuid: Any) -> list:
        prefix = f"axon:{int(netuid)}:"
        return [(k[len(prefix):], self.rt.store.get(k)) for k in self.rt.store.keys(prefix)]

    def _q_SubtensorModule_Weights(self, netuid: Any, uid: Any) -> list:
        return [tuple(p) for p in self.rt.store.get(f"w:{int(netuid)}:{int(uid)}") or []]

    def _m_SubtensorModule_Weights(self, netuid: Any) -> list:
        return self._rows("w", netuid)

    def _q_SubtensorModule_Bonds(self, netuid: Any, uid: Any) -> list:
        return [tuple(p) for p in self.rt.store.get(f"b:{int(netuid)}:{int(uid)}") or []]

    def _m_SubtensorModule_Bonds(self, netuid: Any) -> list:
        return self._rows("b", netuid)

    def _rows(self, kind: str, netuid: Any) -> list:
        prefix = f"{kind}:{int(netuid)}:"
        rows = [(int(k[len(prefix):]), [tuple(p) for p in self.rt.store.get(k)]) for k in self.rt.store.keys(prefix)]
        return sorted(rows)

    def _q_SubtensorModule_TimelockedWeightCommits(self, netuid: Any, epoch: Any) -> list:
        return [tuple(e) for e in self.rt.store.get(f"tlc:{int(netuid)}:{int(epoch)}") or []]

    def _m_SubtensorModule_TimelockedWeightCommits(self, netuid: Any) -> list:
        prefix = f"tlc:{int(netuid)}:"
        rows = [(int(k[len(prefix):]), [tuple(e) for e in self.rt.store.get(k)]) for k in self.rt.store.keys(prefix)]
        return sorted(rows)

    def _q_SubtensorModule_CommitRevealWeightsVersion(self) -> int:
        from subnet.devnet.runtime.commit_reveal import COMMIT_REVEAL_VERSION

        return COMMIT_REVEAL_VERSION

    def _q_SubtensorModule_Alpha(self, hotkey: str, coldkey: str, netuid: Any) -> int:
        return int((self.rt.store.get(f"stake:{int(netuid)}:{hotkey}") or {}).get(coldkey, 0))

    def _q_SubtensorModule_TotalHotkeyAlpha(self, hotkey: str, netuid: Any) -> int:
        return self.rt.stake_of(int(netuid), hotkey)

    def _q_SubtensorModule_StakingHotkeys(self, coldkey: str) -> list:
        out = []
        for key in self.rt.store.keys("stake:"):
            _, _, hotkey = key.split(":", 2)
            if coldkey in (self.rt.store.get(key) or {}) and hotkey not in out:
                out.append(hotkey)
        return out

    # Commitments
    def _q_Commitments_CommitmentOf(self, netuid: Any, hotkey: str) -> dict | None:
        return self.rt.store.get(f"cm:{int(netuid)}:{hotkey}")

    def _m_Commitments_CommitmentOf(self, netuid: Any) -> list:
        prefix = f"cm:{int(netuid)}:"
        return [(k[len(prefix):], self.rt.store.get(k)) for k in self.rt.store.keys(prefix)]

    def _q_Commitments_LastCommitment(self, netuid: Any, hotkey: str) -> int | None:
        return self.rt.store.get(f"cmlast:{int(netuid)}:{hotkey}")

    def _q_Commitments_UsedSpaceOf(self, netuid: Any, hotkey: str) -> dict | None:
        used = self.rt.store.get(f"cmspace:{int(netuid)}:{hotkey}")
        return {"last_epoch": used["interval"], "used_space": used["used"]} if used else None

    def _m_Commitments_RevealedCommitments(self, netuid: Any = None) -> list:
        return []

    # -- runtime APIs ------------------------------------------------------------

    def runtime_call(self, api: str, method: str, params: Any) -> Any:
        args = list(params.values()) if isinstance(params, dict) else list(params or [])
        if api == "SubnetInfoRuntimeApi" and method == "get_metagraph":
            return self.metagraph(args[0])
        if api == "SubnetInfoRuntimeApi" and method.startswith("get_subnet_hyperparams"):
            rec = self._subnet(args[0])
            if rec is None:
                return None
            return [_hyperparam_entry(k, v) for k, v in rec["hp"].items() if k not in GLOBAL_HYPERPARAMETERS]
        if api == "SubnetInfoRuntimeApi" and method == "get_next_epoch_start_block":
            rec = self._subnet(args[0])
            return None if rec is None else next_epoch_start_block(rec)
        if api == "StakeInfoRuntimeApi":
            return self.stake_info(method, args)
        if api == "NeuronInfoRuntimeApi" and method in ("get_neurons_lite", "get_neurons"):
            return self.neurons(args[0], lite=method.endswith("lite"))
        if api == "SubnetRegistrationRuntimeApi" and method == "get_network_registration_cost":
            return self.rt.genesis.network_lock_cost
        if api == "SwapRuntimeApi" and method == "current_alpha_price":
            return RAO_PER_TAO  # 1:1, no AMM
        if api == "SwapRuntimeApi" and method == "current_alpha_price_all":
            return [{"netuid": n, "price": RAO_PER_TAO} for n in self.rt.netuids()]
        if api == "SwapRuntimeApi" and method == "sim_swap_tao_for_alpha":
            tao = int(params.get("tao", 0)) if isinstance(params, dict) else int(args[1])
            return _sim_swap(tao)
        if api == "SwapRuntimeApi" and method == "sim_swap_alpha_for_tao":
            alpha = int(params.get("alpha", 0)) if isinstance(params, dict) else int(args[1])
            return _sim_swap(alpha)
        if api == "Core" and method == "version":
            return {"spec_name": "tessera-devnet", "spec_version": SPEC_VERSION}
        return None

    # StakeInfoRuntimeApi (rpc_info/stake_info.rs), 1:1 alpha, no locks.
    def stake_info(self, method: str, args: list) -> Any:
        if method == "get_stake_info_for_hotkey_coldkey_netuid":
            hotkey, coldkey, netuid = args[0], args[1], int(args[2])
            return self._stake_record(hotkey, coldkey, netuid)
        if method == "get_stake_info_for_coldkey":
            return self._stake_for_coldkey(args[0])
        if method == "get_stake_info_for_coldkeys":
            coldkeys = list(args[0] or [])
            return [(ck, self._stake_for_coldkey(ck)) for ck in coldkeys]
        if method == "get_stake_availability_for_coldkeys":
            coldkeys, netuids = list(args[0] or []), [int(n) for n in args[1] or []]
            out: dict = {}
            for ck in coldkeys:
                per: dict = {}
                for netuid in netuids:
                    total = sum(int(r["stake"]) for r in self._stake_for_coldkey(ck) if r["netuid"] == netuid)
                    per[netuid] = {"total": total, "locked": 0, "available": total}
                out[ck] = per
            return out
        if method == "get_stake_fee":
            return 0
        return None

    def _stake_record(self, hotkey: str, coldkey: str, netuid: int) -> dict:
        rec = self._subnet(netuid)
        row = self.rt.store.get(f"stake:{netuid}:{hotkey}") or {}
        uid = rec["hotkeys"].index(hotkey) if rec and hotkey in rec["hotkeys"] else None
        return {
            "hotkey": hotkey,
            "coldkey": coldkey,
            "netuid": netuid,
            "stake": int(row.get(coldkey, 0)),
            "locked": 0,
            "emission": int(rec["emission"][uid]) if uid is not None else 0,  # last epoch's alpha to the uid
            "tao_emission": 0,
            "drain": 0,
            "is_registered": uid is not None,
        }

    def _stake_for_coldkey(self, coldkey: str) -> list[dict]:
        """`_get_stake_info_for_coldkeys`: every (netuid, hotkey) with nonzero alpha, netuid-major."""
        hotkeys = self._q_SubtensorModule_StakingHotkeys(coldkey)
        out = []
        for netuid in self.rt.netuids():
            for hotkey in hotkeys:
                record = self._stake_record(hotkey, coldkey, netuid)
                if record["stake"]:
                    out.append(record)
        return out

    def metagraph(self, netuid: Any) -> dict | None:
        rec = self._subnet(netuid)
        if rec is None:
            return None
        rt = self.rt
        hotkeys = rec["hotkeys"]
        stakes = [rt.stake_of(rec["netuid"], hk) for hk in hotkeys]
        block = rt.block
        return {
            "netuid": rec["netuid"],
            "name": list(rec["name"].encode()),
            "symbol": list(rec["symbol"].encode()),
            "identity": None,
            "network_registered_at": rec["registered_at"],
            "owner_hotkey": rec["owner_hotkey"],
            "owner_coldkey": rec["owner"],
            "block": block,
            "tempo": rec["hp"]["Tempo"],
            "last_step": rec["last_epoch_block"],
            "blocks_since_last_step": max(0, block - int(rec["last_epoch_block"])),
            "subnet_emission": 0,
            "alpha_in": 0,
            "alpha_out": sum(stakes),
            "tao_in": 0,
            "moving_price": {"bits": 2**32},
            "num_uids": len(hotkeys),
            "max_uids": rec["hp"]["MaxAllowedUids"],
            "pending_server_emission": 0,
            "hotkeys": list(hotkeys),
            "coldkeys": [rt.hotkey_owner(hk) for hk in hotkeys],
            "identities": [None] * len(hotkeys),
            "axons": [self._axon(rec["netuid"], hk) for hk in hotkeys],
            "active": list(rec["active"]),
            "validator_permit": list(rec["validator_permit"]),
            "pruning_score": list(rec["pruning_score"]),
            "last_update": list(rec["last_update"]),
            "emission": list(rec["emission"]),
            "dividends": list(rec["dividends"]),
            "incentives": list(rec["incentive"]),
            "consensus": list(rec["consensus"]),
            "trust": list(rec["trust"]),
            "rank": list(rec["rank"]),
            "block_at_registration": list(rec["block_at_registration"]),
            "alpha_stake": stakes,
            "tao_stake": [0] * len(hotkeys),
            "total_stake": stakes,
            **{_snake(k): v for k, v in rec["hp"].items()},
        }

    def _axon(self, netuid: int, hotkey: str) -> dict:
        axon = self.rt.store.get(f"axon:{netuid}:{hotkey}")
        if axon is None:
            return {"block": 0, "version": 0, "ip": 0, "port": 0, "ip_type": 0, "protocol": 0,
                    "placeholder1": 0, "placeholder2": 0}
        return dict(axon)

    def neurons(self, netuid: Any, *, lite: bool) -> list[dict]:
        rec = self._subnet(netuid)
        if rec is None:
            return []
        n = rec["netuid"]
        out = []
        for uid, hk in enumerate(rec["hotkeys"]):
            row = self.rt.store.get(f"stake:{n}:{hk}") or {}
            neuron = {
                "hotkey": hk,
                "coldkey": self.rt.hotkey_owner(hk),
                "uid": uid,
                "netuid": n,
                "active": rec["active"][uid],
                "axon_info": self._axon(n, hk),
                "prometheus_info": {"block": 0, "version": 0, "ip": 0, "port": 0, "ip_type": 0},
                "stake": [(ck, amount) for ck, amount in row.items()],
                "rank": rec["rank"][uid],
                "emission": rec["emission"][uid],
                "incentive": rec["incentive"][uid],
                "consensus": rec["consensus"][uid],
                "trust": rec["trust"][uid],
                "validator_trust": rec["validator_trust"][uid],
                "dividends": rec["dividends"][uid],
                "last_update": rec["last_update"][uid],
                "validator_permit": rec["validator_permit"][uid],
                "pruning_score": rec["pruning_score"][uid],
            }
            if not lite:
                neuron["weights"] = self._q_SubtensorModule_Weights(n, uid)
                neuron["bonds"] = self._q_SubtensorModule_Bonds(n, uid)
            out.append(neuron)
        return out


def _subnet_scalar(rt: Runtime, rec: dict, item: str) -> Any:
    if item == "NetworksAdded":
        return True
    if item == "SubnetworkN":
        return len(rec["hotkeys"])
    if item == "TokenSymbol":
        return "0x" + rec["symbol"].encode().hex()
    if item == "SubnetName":
        return "0x" + rec["name"].encode().hex()
    if item == "BlocksSinceLastStep":
        return max(0, rt.block - int(rec["last_epoch_block"]))
    if item == "SubtokenEnabled":
        return rec["first_emission_block"] is not None
    if item == "SubnetEmissionEnabled":
        return True
    if item == "CollateralLockShare":
        return 0
    if item == "SubnetMechanism":
        return 1
    if item == "MechanismCountCurrent":
        return 1
    if item == "SubnetEpochIndex":
        return int(rec.get("epoch_index", 0))
    if item == "PendingEpochAt":
        return 0  # no owner-triggered epochs on the devnet
    pending = pending_emission(rt, rec)
    owner_cut = pending * int(rec["hp"]["SubnetOwnerCut"]) // 65535
    if item == "PendingOwnerCut":
        return owner_cut
    if item in ("PendingServerEmission", "PendingValidatorEmission"):
        return (pending - owner_cut) // 2
    return None


def _sim_swap(amount: int) -> dict:
    """A SimSwapResult at 1:1 with no pool: what goes in comes out, no fee, no slippage."""
    return {"alpha_amount": amount, "tao_amount": amount, "tao_fee": 0, "alpha_fee": 0,
            "tao_slippage": 0, "alpha_slippage": 0}


def _u64f64_bits(value: Any) -> int:
    return int(float(value) * 2**64)


def _hyperparam_entry(name: str, value: Any) -> dict:
    if name == "BurnIncreaseMult":
        return {"name": _snake(name), "value": {"U64F64": {"bits": _u64f64_bits(value)}}}
    return {"name": _snake(name), "value": {_tag(value): value}}


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _tag(value: Any) -> str:
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, str):
        return "Str"
    return "U64"
