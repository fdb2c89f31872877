"""Raw storage keys <-> the devnet's (pallet, item, params) reads.

A Substrate node answers `state_getStorage(key)` from its trie; the devnet
answers it by recognising the item from the key's 32-byte prefix
(twox128(pallet) ++ twox128(item)), recovering the map keys (every hasher the
metadata uses is transparent: Identity, Blake2_128Concat, Twox64Concat) and
SCALE-encoding what `Reader.query` returns, with the SDK's own codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bittensor._transport.codec import RuntimeCodec, StorageEntry

from subnet.devnet.reads import Reader
from subnet.devnet.substrate_rpc.metadata import StorageDef, runtime_definition
from subnet.devnet.substrate_rpc.mev_shield import ShieldKeys

_HASH_BYTES = {"Identity": 0, "Blake2_128Concat": 16, "Twox64Concat": 8}
_KEY_BYTES = {"NetUid": 2, "NetUidStorageIndex": 2, "u16": 2, "u32": 4, "u64": 8, "AccountId32": 32}


class StorageKeyError(ValueError):
    """A key that names no item the devnet serves, or whose map keys do not decode."""


@dataclass(frozen=True)
class Item:
    pallet: str
    definition: StorageDef
    entry: StorageEntry
    prefix: bytes

    @property
    def name(self) -> str:
        return self.definition.name


class StorageMap:
    """Every served storage item, indexed by its 32-byte key prefix."""

    def __init__(self, codec: RuntimeCodec, shield: ShieldKeys | None = None) -> None:
        self.codec = codec
        self.shield = shield  # answers MevShield's key items (the author's keys, not runtime state)
        self.items: dict[bytes, Item] = {}
        pallets, _ = runtime_definition()
        for pallet in pallets:
            for item in pallet.storage:
                entry = codec.storage_entry(pallet.name, item.name)
                prefix = codec.storage_key(entry, [])[:32]
                self.items[prefix] = Item(pallet.name, item, entry, prefix)

    def item(self, key: bytes) -> Item | None:
        return self.items.get(key[:32])

    def split(self, item: Item, key: bytes) -> list[Any]:
        """The decoded map keys present in `key` (all of them for a full key, a prefix for a partial one)."""
        params: list[Any] = []
        offset = 32
        for (hasher, expr), type_str in zip(item.definition.keys, item.entry.param_types):
            if offset == len(key):
                break
            size = _HASH_BYTES[hasher] + _KEY_BYTES[expr]
            part = key[offset + _HASH_BYTES[hasher]:offset + size]
            if offset + size > len(key):
                raise StorageKeyError(f"{item.pallet}.{item.name}: truncated key")
            params.append(self.codec.decode(type_str, part))
            offset += size
        if offset != len(key):
            raise StorageKeyError(f"{item.pallet}.{item.name}: {len(key) - offset} stray key bytes")
        return params

    def value(self, reader: Reader, key: bytes) -> bytes | None:
        """The SCALE value stored at `key`, or None where the chain would have no entry."""
        item = self.item(key)
        if item is None:
            return None
        params = self.split(item, key)
        if len(params) != len(item.definition.keys):
            return None  # a prefix, not an entry
        value = self._query(reader, item, params)
        if value is None:
            return None
        return self.codec.encode(item.entry.value_type, value)

    def _query(self, reader: Reader, item: Item, params: list[Any]) -> Any:
        if item.pallet == "MevShield" and self.shield is not None:
            return self.shield.storage(item.name, reader.rt.block)
        return reader.query(item.pallet, item.name, params)

    def keys(self, reader: Reader, prefix: bytes) -> list[bytes]:
        """Every key under `prefix` the state holds, sorted as a trie lists them."""
        if len(prefix) < 32:
            items = [item for p, item in self.items.items() if p.startswith(prefix)]
            return sorted(k for item in items for k in self._item_keys(reader, item, []))
        item = self.item(prefix)
        if item is None:
            return []
        fixed = self.split(item, prefix)
        return sorted(k for k in self._item_keys(reader, item, fixed) if k.startswith(prefix))

    def _item_keys(self, reader: Reader, item: Item, fixed: list[Any]) -> list[bytes]:
        arity = len(item.definition.keys)
        if arity == 0:
            return [item.prefix] if self._query(reader, item, []) is not None else []
        if len(fixed) == arity:
            return [self.codec.storage_key(item.entry, fixed)]
        rows = reader.query_map(item.pallet, item.name, fixed)
        out = []
        for rest, value in rows:
            if value is None:
                continue
            rest_keys = list(rest) if isinstance(rest, (tuple, list)) and arity - len(fixed) > 1 else [rest]
            out.append(self.codec.storage_key(item.entry, fixed + rest_keys))
        return out
