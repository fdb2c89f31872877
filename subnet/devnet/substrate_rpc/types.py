"""A portable type registry (scale-info's `PortableRegistry`) built from type expressions.

`TypeRegistry.resolve("Vec<(u16, u16)>")` returns the registry id of that type,
adding it (and everything it is made of) on first use; named composites and
enums are declared once with their subtensor path (`struct`, `enum`) so the
SDK's codec names them as it names the chain's own types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from subnet.devnet.substrate_rpc import scale

PRIMITIVES = ("bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "u256",
              "i8", "i16", "i32", "i64", "i128", "i256")

Field = tuple[str | None, str]  # (name, type expression)


class TypeExprError(ValueError):
    """A type expression names nothing this registry knows."""


@dataclass
class _Entry:
    path: list[str]
    params: list[tuple[str, int | None]]
    body: bytes  # encoded TypeDef
    docs: list[str] = field(default_factory=list)


class TypeRegistry:
    """Types by id, deduplicated by their canonical expression."""

    def __init__(self) -> None:
        self._entries: list[_Entry | None] = []
        self._by_expr: dict[str, int] = {}
        self._named: dict[str, tuple[list[str], str, object]] = {}

    # -- declarations -------------------------------------------------------

    def struct(self, name: str, path: str, fields: list[Field] | str) -> None:
        """A named composite; `fields` as a list of (name, expr), or one expr for a newtype."""
        self._named[name] = (path.split("::"), "struct", fields)

    def enum(self, name: str, path: str, variants: list[tuple[str, int, list[Field]]]) -> None:
        """A named variant type: (variant name, index, fields)."""
        self._named[name] = (path.split("::"), "enum", variants)

    # -- resolution ---------------------------------------------------------

    def resolve(self, expr: str) -> int:
        expr = _normalise(expr)
        if expr in self._by_expr:
            return self._by_expr[expr]
        if expr in self._named:
            return self._add_named(expr)
        if expr in PRIMITIVES:
            return self._add(expr, [], b"\x05" + bytes([PRIMITIVES.index(expr)]))
        if expr == "()":
            return self._add(expr, [], b"\x04" + scale.compact(0))
        if expr.startswith("(") and expr.endswith(")"):
            ids = [self.resolve(part) for part in _split(expr[1:-1])]
            return self._add(expr, [], b"\x04" + scale.vec(ids, scale.compact))
        if expr.startswith("[") and expr.endswith("]"):
            inner, _, length = expr[1:-1].rpartition(";")
            return self._add(expr, [], b"\x03" + scale.u32(int(length)) + scale.compact(self.resolve(inner)))
        match = re.fullmatch(r"(\w+)<(.*)>", expr)
        if match is None:
            raise TypeExprError(f"unknown type {expr!r}")
        outer, args = match.group(1), _split(match.group(2))
        if outer == "Vec":
            return self._add(expr, [], b"\x02" + scale.compact(self.resolve(args[0])))
        if outer == "Compact":
            return self._add(expr, [], b"\x06" + scale.compact(self.resolve(args[0])))
        if outer == "Option":
            inner = self.resolve(args[0])
            body = b"\x01" + scale.vec([("None", 0, []), ("Some", 1, [(None, inner, args[0])])], _variant)
            return self._add(expr, ["Option"], body, params=[("T", inner)])
        if outer == "Result":
            ok, err = self.resolve(args[0]), self.resolve(args[1])
            body = b"\x01" + scale.vec([("Ok", 0, [(None, ok, args[0])]), ("Err", 1, [(None, err, args[1])])], _variant)
            return self._add(expr, ["Result"], body, params=[("T", ok), ("E", err)])
        if outer == "BTreeMap":
            key, value = self.resolve(args[0]), self.resolve(args[1])
            pairs = f"Vec<({args[0]}, {args[1]})>"
            body = b"\x00" + scale.vec([(None, self.resolve(pairs), pairs)], _field)
            return self._add(expr, ["BTreeMap"], body, params=[("K", key), ("V", value)])
        raise TypeExprError(f"unknown generic {outer!r} in {expr!r}")

    def _add(self, expr: str, path: list[str], body: bytes, params: list | None = None) -> int:
        type_id = len(self._entries)
        self._entries.append(_Entry(path, params or [], body))
        self._by_expr[expr] = type_id
        return type_id

    def _add_named(self, name: str) -> int:
        path, kind, spec = self._named[name]
        type_id = len(self._entries)
        self._entries.append(None)  # reserve first: named types may be recursive (RuntimeCall)
        self._by_expr[name] = type_id
        if kind == "struct":
            fields = [(None, spec)] if isinstance(spec, str) else spec
            body = b"\x00" + scale.vec([(n, self.resolve(t), t) for n, t in fields], _field)
        else:
            body = b"\x01" + scale.vec(
                [(vname, index, [(n, self.resolve(t), t) for n, t in fields]) for vname, index, fields in spec],
                _variant)
        self._entries[type_id] = _Entry(path, [], body)
        return type_id

    # -- encoding -----------------------------------------------------------

    def encode(self) -> bytes:
        """The `PortableRegistry` SCALE bytes (types in id order)."""
        out = [scale.compact(len(self._entries))]
        for type_id, entry in enumerate(self._entries):
            assert entry is not None, f"type {type_id} reserved but never defined"
            out.append(scale.compact(type_id))
            out.append(scale.vec(entry.path, scale.text))
            out.append(scale.vec(entry.params, lambda p: scale.text(p[0]) + scale.option(p[1], scale.compact)))
            out.append(entry.body)
            out.append(scale.vec(entry.docs, scale.text))
        return b"".join(out)


def _field(spec: tuple[str | None, int, str]) -> bytes:
    name, type_id, type_name = spec
    return (scale.option(name, scale.text) + scale.compact(type_id)
            + scale.option(type_name, scale.text) + scale.vec([], scale.text))


def _variant(spec: tuple[str, int, list]) -> bytes:
    name, index, fields = spec
    return scale.text(name) + scale.vec(fields, _field) + scale.u8(index) + scale.vec([], scale.text)


def _normalise(expr: str) -> str:
    return re.sub(r"\s+", "", expr).replace(";", "; ").replace(",", ", ")


def _split(args: str) -> list[str]:
    """Split a comma-separated type list at depth 0."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(args):
        if ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(args[start:i].strip())
            start = i + 1
    tail = args[start:].strip()
    if tail:
        parts.append(tail)
    return parts
