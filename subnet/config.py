"""Command-line flags, environment variables and YAML files from frozen config dataclasses.

Why: every component owns one frozen, keyword-only dataclass (units documented
on the fields); the neurons compose them (`subnet.node.config`)
and this module turns the tree into bittensor-style dotted flags, so the
dataclass is the single source of truth for names, types, defaults and help.

Naming rule
    A field ``name`` of a sub-config reached through the field ``wallet`` is
    the flag ``--wallet.name``; top-level scalars are plain (``--netuid``).
    Its environment variable is ``TESSERA_`` + the dotted name upper-cased
    with dots replaced by underscores: ``--wallet.name`` <- ``TESSERA_WALLET_NAME``,
    ``--subtensor.network`` <- ``TESSERA_SUBTENSOR_NETWORK``, ``--netuid`` <-
    ``TESSERA_NETUID``. A field may override it with ``metadata={"env": ...}``;
    `ENV_OVERRIDES` holds the overrides for classes owned elsewhere
    (``--data.cache_dir`` <- ``TESSERA_CACHE_DIR``, per contrib/ARCHITECTURE.md).
    The flags bittensor itself defines also read its variables (`BT_ENV`:
    ``BT_WALLET_NAME`` or 11.x's ``BT_WALLET``, ``BT_WALLET_HOTKEY``,
    ``BT_WALLET_PATH``, ``BT_SUBTENSOR_NETWORK`` or ``BT_NETWORK``,
    ``BT_SUBTENSOR_CHAIN_ENDPOINT`` or ``BT_CHAIN_ENDPOINT``, ``BT_LOGGING_*``).

Precedence: command line > ``TESSERA_*`` environment > ``BT_*`` environment >
``--config FILE.yaml`` (or ``TESSERA_CONFIG``) > dataclass default. A field
with no default must be given one way or the other. The YAML file is a mapping
of dotted names (``wallet.name: cold``) or nested groups (``wallet: {name:
cold}``); a key that names no flag is an error, with the closest names.

A root config may define ``finalize(self) -> Self``: defaults that depend on
other fields (the neurons' state directory) and refusals that span fields (no
``--netuid`` on a real network); `config_from_args` calls it last.

Values: ``int``, ``float``, ``str``, ``Path``, ``bool`` (``1/true/yes/on`` or
``0/false/no/off``; a bare ``--logging.debug`` means true), ``Literal`` choices,
``X | None`` (``none``/``null`` means None) and ``tuple[X, ...]``
(comma-separated; a YAML list in a file). A bad value exits with status 2 and
a message naming the flag and its environment variable (or the file).

Help text: ``field(metadata={"help": ...})`` or the attribute docstring (a
string literal right under the field, torchtitan style). Every flag has one
(validator_tests/test_cli_help.py walks every entry point). The consensus
settings (subnet/consensus.py) are listed in one ``--help`` group of their own.

This module is the engine only: each sub-config lives in the package that owns
it (``subnet.chain.config``, ``subnet.storage.config``, ``subnet.model.config``,
``subnet.miner.config``, ``subnet.protocol.config``, ``subnet.sync.config``,
``subnet.telemetry.logs``); the neurons compose them in ``subnet.node.config``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import fnmatch
import inspect
import os
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from subnet.errors import ConfigError, SubnetError

ENV_PREFIX = "TESSERA_"
# Dotted flag -> environment variable, where a contract fixed another name than the rule.
ENV_OVERRIDES: dict[str, str] = {"data.cache_dir": "TESSERA_CACHE_DIR"}
# Dotted flag -> bittensor's environment variables for it (first found wins), read after TESSERA_*.
# The SDK <= 9 names (BT_<GROUP>_<FIELD>) and the 11.x btcli names (BT_WALLET, BT_NETWORK, ...).
BT_ENV: dict[str, tuple[str, ...]] = {
    "wallet.name": ("BT_WALLET_NAME", "BT_WALLET"),
    "wallet.hotkey": ("BT_WALLET_HOTKEY",),
    "wallet.path": ("BT_WALLET_PATH",),
    "subtensor.network": ("BT_SUBTENSOR_NETWORK", "BT_NETWORK"),
    "subtensor.chain_endpoint": ("BT_SUBTENSOR_CHAIN_ENDPOINT", "BT_CHAIN_ENDPOINT"),
    "logging.debug": ("BT_LOGGING_DEBUG",),
    "logging.trace": ("BT_LOGGING_TRACE",),
    "logging.logging_dir": ("BT_LOGGING_LOGGING_DIR",),
}
CONFIG_FILE_FLAG = "--config"
CONFIG_FILE_ENV = "TESSERA_CONFIG"
_CONFIG_DEST = "config_file__"
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
_NONE = {"none", "null"}

C = TypeVar("C")


# --------------------------------------------------------------------------- flag specs


@dataclass(frozen=True, kw_only=True)
class FlagSpec:
    """One leaf field of a config tree, as a flag and an environment variable."""

    path: tuple[str, ...]
    """Field names from the root config down to this leaf."""
    flag: str
    env: str
    convert: Callable[[str], Any]
    choices: tuple[Any, ...] | None
    is_bool: bool
    required: bool
    default: Any
    help: str
    bt_env: tuple[str, ...] = ()
    """bittensor's environment variables for this flag (read after `env`)."""
    nullable: bool = False
    """The field accepts None (`X | None`)."""
    aliases: tuple[str, ...] = ()
    """Extra option strings (field metadata "aliases"), kept for old spellings."""
    append_item: Callable[[str], Any] | None = None
    """For a `tuple[X, ...]` field with metadata "append": the flag repeats, one item each (no comma split)."""

    @property
    def dest(self) -> str:
        return ".".join(self.path)


def env_name(dotted: str) -> str:
    """The environment variable for a dotted flag name (see module docstring)."""
    return ENV_PREFIX + dotted.upper().replace(".", "_").replace("-", "_")


_DOC_ENTRY = re.compile(r"^([A-Za-z_*][\w*]*):\s+(\S.*)$")


def _class_doc_entries(klass: type) -> dict[str, str]:
    """`name: text` entries of a class docstring (indented lines continue one); `n_*_x` patterns allowed."""
    entries: dict[str, str] = {}
    current: str | None = None
    for line in inspect.cleandoc(klass.__doc__ or "").splitlines():
        match = _DOC_ENTRY.match(line)
        if match:
            current = match.group(1)
            entries[current] = match.group(2).strip()
        elif current is not None and line.startswith((" ", "\t")) and line.strip():
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


def _field_docs(cls: type) -> dict[str, str]:
    """Help per field: attribute docstrings (a string literal right after a field), else a
    `field: text` entry of the class docstring (Google style, as CodecConfig and ScoreConfig write them)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        entries = _class_doc_entries(klass)
        for f in dataclasses.fields(klass):
            for pattern, text in entries.items():
                if fnmatch.fnmatchcase(f.name, pattern):
                    docs[f.name] = text
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return docs


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false, 1/0, yes/no), got {text!r}")


def _scalar_converter(tp: Any) -> tuple[Callable[[str], Any], tuple[Any, ...] | None, bool]:
    """(convert, choices, is_bool) for a non-Optional type, or ConfigError if unsupported."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        by_text = {str(c): c for c in choices}

        def conv_literal(text: str) -> Any:
            if text in by_text:
                return by_text[text]
            raise ValueError(f"invalid choice {text!r} (choose from {', '.join(map(str, choices))})")

        return conv_literal, choices, False
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise ConfigError(f"unsupported tuple type {tp!r}; use tuple[X, ...]")
        inner, _, _ = _scalar_converter(args[0])

        def conv_tuple(text: str) -> tuple[Any, ...]:
            parts = [p.strip() for p in text.split(",")] if text.strip() else []
            return tuple(inner(p) for p in parts)

        return conv_tuple, None, False
    if tp is bool:
        return parse_bool, None, True
    if tp is int:
        def conv_int(text: str) -> int:
            try:
                return int(text.strip().replace("_", ""), 0)
            except ValueError:
                raise ValueError(f"expected an integer, got {text!r}") from None

        return conv_int, None, False
    if tp is float:
        def conv_float(text: str) -> float:
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"expected a number, got {text!r}") from None

        return conv_float, None, False
    if tp is str:
        return str, None, False
    if tp is Path:
        return lambda text: Path(text).expanduser(), None, False
    raise ConfigError(f"unsupported config field type {tp!r}")


def _converter(tp: Any) -> tuple[Callable[[str], Any], tuple[Any, ...] | None, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(tp)) != 2:
            raise ConfigError(f"unsupported union type {tp!r}; only X | None")
        inner, choices, is_bool = _scalar_converter(args[0])

        def conv_optional(text: str) -> Any:
            return None if text.strip().lower() in _NONE else inner(text)

        return conv_optional, choices, is_bool
    return _scalar_converter(tp)


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _default_of(f: dataclasses.Field) -> tuple[bool, Any]:
    if f.default is not dataclasses.MISSING:
        return True, f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return True, f.default_factory()  # type: ignore[misc]
    return False, None


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def flag_specs(cls: type, prefix: str | Sequence[str] = (), instance: Any = None) -> list[FlagSpec]:
    """Flatten a (nested) config dataclass into its leaf flags, in field order.

    `instance` is the parent's default for this sub-config: its values are the defaults shown.
    """
    if not _is_config(cls):
        raise ConfigError(f"{cls!r} is not a dataclass")
    base = tuple(prefix.split(".")) if isinstance(prefix, str) and prefix else tuple(prefix or ())
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    specs: list[FlagSpec] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        path = base + (f.name,)
        if _is_config(tp):
            has_default, default = _default_of(f)
            specs.extend(flag_specs(tp, path, default if has_default else None))
            continue
        convert, choices, is_bool = _converter(tp)
        append_item = None
        if f.metadata.get("append"):
            if typing.get_origin(tp) is not tuple:
                raise ConfigError(f"{cls.__name__}.{f.name}: metadata append needs a tuple[X, ...] field")
            append_item = _scalar_converter(typing.get_args(tp)[0])[0]
        dotted = ".".join(path)
        env = f.metadata.get("env") or ENV_OVERRIDES.get(dotted) or env_name(dotted)
        bt_env = BT_ENV.get(dotted, ())
        has_default, default = _default_of(f)
        if instance is not None:
            has_default, default = True, getattr(instance, f.name)
        text = (f.metadata.get("help") or docs.get(f.name, "")).replace("%", "%%")
        envs = env + (f" or {' or '.join(bt_env)}" if bt_env else "")
        tail = f"env {envs}; " + (f"default {_show(default)}" if has_default else "required")
        specs.append(
            FlagSpec(
                path=path,
                flag="--" + dotted,
                env=env,
                convert=convert,
                choices=choices,
                is_bool=is_bool,
                required=not has_default,
                default=default,
                help=f"{text} ({tail})" if text else f"({tail})",
                bt_env=bt_env,
                nullable=_is_optional(tp),
                aliases=tuple(f.metadata.get("aliases", ())),
                append_item=append_item,
            )
        )
    return specs


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


# --------------------------------------------------------------------------- argparse


def _argparse_type(spec: FlagSpec) -> Callable[[str], Any]:
    convert = spec.append_item or spec.convert

    def conv(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            # argparse prefixes "argument --flag:"; name the env var too.
            raise argparse.ArgumentTypeError(f"{exc} (also settable as {spec.env})") from None

    conv.__name__ = spec.flag
    return conv


def add_config_file_flag(parser: argparse.ArgumentParser) -> None:
    """`--config FILE.yaml` (once per parser): flag values from a YAML file, below the environment."""
    if CONFIG_FILE_FLAG in parser._option_string_actions:
        return
    parser.add_argument(CONFIG_FILE_FLAG, dest=_CONFIG_DEST, metavar="FILE.yaml", default=argparse.SUPPRESS,
                        type=lambda text: Path(text).expanduser(),
                        help="YAML mapping of flag names (dotted, or nested groups) to values; command line and "
                             f"environment override it (env {CONFIG_FILE_ENV})")


def add_dataclass_flags(
    parser: argparse.ArgumentParser, cls: type, prefix: str | Sequence[str] = (), *, config_file: bool = True
) -> list[FlagSpec]:
    """Add one flag per leaf field of `cls` (a group per sub-config), and `--config`; return the specs.

    Flags default to "not given" so `config_from_args` can tell the command
    line from the environment, the config file and the dataclass default.
    """
    if config_file:
        add_config_file_flag(parser)
    from subnet.consensus import HELP_DESCRIPTION, HELP_TITLE, is_consensus

    specs = flag_specs(cls, prefix)
    groups: dict[tuple[str, ...], Any] = {}
    for spec in specs:
        # Consensus settings (subnet/consensus.py) share one group, so --help shows what must agree network-wide.
        group_key = ("<consensus>",) if is_consensus(spec.dest) else spec.path[:-1]
        if group_key not in groups:
            if group_key == ("<consensus>",):
                groups[group_key] = parser.add_argument_group(HELP_TITLE, HELP_DESCRIPTION)
            else:
                title = ".".join(group_key) if group_key else None
                groups[group_key] = parser.add_argument_group(title) if title else parser
        kwargs: dict[str, Any] = dict(
            dest=spec.dest, default=argparse.SUPPRESS, help=spec.help, type=_argparse_type(spec)
        )
        if spec.is_bool:
            kwargs.update(nargs="?", const=True, metavar="BOOL")
        elif spec.append_item is not None:
            kwargs.update(action="append", metavar=spec.path[-1].upper())
        elif spec.choices is not None:
            kwargs["metavar"] = "{" + ",".join(map(str, spec.choices)) + "}"
        else:
            kwargs["metavar"] = spec.path[-1].upper()
        groups[group_key].add_argument(spec.flag, *spec.aliases, **kwargs)
    return specs


def _fail(parser: argparse.ArgumentParser | None, message: str) -> typing.NoReturn:
    if parser is not None:
        parser.error(message)  # exits with status 2
    raise ConfigError(message)


def config_from_args(
    cls: type[C],
    args: argparse.Namespace,
    env: Mapping[str, str] | None = None,
    *,
    parser: argparse.ArgumentParser | None = None,
    prefix: str | Sequence[str] = (),
) -> C:
    """Build `cls` from parsed flags, then TESSERA_* and BT_* variables, then the config file, then defaults.

    With `parser`, errors exit via `parser.error` (status 2); without it they
    raise `ConfigError`.
    """
    env = os.environ if env is None else env
    base = tuple(prefix.split(".")) if isinstance(prefix, str) and prefix else tuple(prefix or ())
    specs = flag_specs(cls, base)
    file_path = getattr(args, _CONFIG_DEST, None) or (Path(env[CONFIG_FILE_ENV]).expanduser()
                                                      if env.get(CONFIG_FILE_ENV) else None)
    try:
        from_file = load_config_file(file_path, specs) if file_path is not None else {}
    except ConfigError as exc:
        _fail(parser, str(exc))
    values: dict[tuple[str, ...], Any] = {}
    for spec in specs:
        bt_name = next((name for name in spec.bt_env if name in env), None)
        if hasattr(args, spec.dest):
            given = getattr(args, spec.dest)
            values[spec.path] = tuple(given) if spec.append_item is not None else given
        elif spec.env in env or bt_name is not None:
            name = spec.env if spec.env in env else str(bt_name)
            try:
                values[spec.path] = spec.convert(env[name])
            except ValueError as exc:
                _fail(parser, f"environment variable {name} (flag {spec.flag}): {exc}")
        elif spec.path in from_file:
            values[spec.path] = from_file[spec.path]
        elif spec.required:
            _fail(parser, f"missing required {spec.flag} (or environment variable {spec.env})")
    try:
        cfg = _build(cls, base, values)
        finalize = getattr(cfg, "finalize", None)
        return finalize() if callable(finalize) else cfg
    except (SubnetError, ValueError, TypeError) as exc:
        _fail(parser, f"invalid configuration: {exc}")


def load_config_file(path: Path, specs: Sequence[FlagSpec]) -> dict[tuple[str, ...], Any]:
    """{flag path: value} from a YAML file; unknown keys and ill-typed values raise ConfigError."""
    import yaml  # a dependency of transformers/datasets; imported here so flag parsing stays cheap

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of flag names to values, "
                          f"not a {type(raw).__name__}")
    by_dest = {spec.dest: spec for spec in specs}
    groups = {".".join(spec.path[:i]) for spec in specs for i in range(1, len(spec.path))}
    flat: dict[str, Any] = {}
    unknown: list[str] = []

    def walk(mapping: dict, prefix: str) -> None:
        for key, value in mapping.items():
            dotted = prefix + str(key).removeprefix("--")
            if dotted in by_dest:
                if dotted in flat:
                    raise ConfigError(f"config file {path}: {dotted} is given twice")
                flat[dotted] = value
            elif dotted in groups and isinstance(value, dict):
                walk(value, dotted + ".")
            else:
                unknown.append(dotted)

    walk(raw, "")
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(by_dest), n=1)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ConfigError(f"config file {path}: unknown key(s): {', '.join(hints)}",
                          remediation="keys are flag names without the dashes, e.g. wallet.name or "
                                      "a nested wallet: {name: ...}; see --help")
    out: dict[tuple[str, ...], Any] = {}
    for dotted, value in flat.items():
        spec = by_dest[dotted]
        try:
            out[spec.path] = _file_value(spec, value)
        except ValueError as exc:
            raise ConfigError(f"config file {path}: {dotted}: {exc}") from None
    return out


def _file_value(spec: FlagSpec, value: Any) -> Any:
    """A YAML value converted like the flag's text, so a file and the command line agree."""
    if value is None:
        if spec.nullable:
            return None
        raise ValueError("null is not allowed here")
    if isinstance(value, dict):
        raise ValueError("expected a value, got a mapping")
    if isinstance(value, bool):
        if spec.is_bool:
            return value
        raise ValueError(f"expected a {spec.path[-1]} value, got the boolean {value} (quote it for a string)")
    if isinstance(value, list | tuple):
        return spec.convert(",".join(map(str, value)))
    return spec.convert(str(value))


def _build(cls: type[C], path: tuple[str, ...], values: Mapping[tuple[str, ...], Any], base: Any = None) -> C:
    """Build `cls` from the given values; `base` (a parent's default instance) fills the rest."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        sub = path + (f.name,)
        if _is_config(hints[f.name]):
            has_default, default = _default_of(f)
            parent = getattr(base, f.name) if base is not None else (default if has_default else None)
            kwargs[f.name] = _build(hints[f.name], sub, values, parent)
        elif sub in values:
            kwargs[f.name] = values[sub]
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


EPILOG = (f"Every flag can also be set by environment variable: {ENV_PREFIX} + the flag name upper-cased "
          "with dots as underscores (e.g. --wallet.name <- TESSERA_WALLET_NAME), or in a YAML file given by "
          f"{CONFIG_FILE_FLAG} ({CONFIG_FILE_ENV}). Command line beats TESSERA_* beats BT_* (bittensor's "
          "names, e.g. BT_WALLET_NAME) beats the config file beats the default.")


def config_parser(cls: type, *, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser `parse_config` uses: `--config` and one flag per leaf field of `cls`."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or (inspect.getdoc(cls) or "").split("\n")[0] or None,
        epilog=EPILOG,
    )
    add_dataclass_flags(parser, cls)
    return parser


def parse_config(
    cls: type[C],
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> C:
    """Parse `argv` (default `sys.argv[1:]`) and `env` (default `os.environ`) into `cls`."""
    parser = config_parser(cls, prog=prog, description=description)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    return config_from_args(cls, args, env, parser=parser)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Flat {dotted flag name: value} view of a config, for logs and run records."""
    return {spec.dest: _get_path(cfg, spec.path) for spec in flag_specs(type(cfg))}


def _get_path(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = getattr(obj, name)
    return obj


# --------------------------------------------------------------------------- shared validation


def require_positive(cls_name: str, **values: float) -> None:
    """Raise ConfigError naming the first of `values` that is not > 0 (sub-configs' __post_init__)."""
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{cls_name}.{name} must be > 0, got {value!r}")
