"""The production miner carries no attack code: its --help, imports and sources are clean.

The adversaries live in subnet/adversary/ and run only through
neurons/adversary_miner.py (tests, benches and the demo).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from subnet.adversary.behaviours import BEHAVIOURS

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = [b for b in BEHAVIOURS if b != "honest"]


def _help(entry: str) -> str:
    res = subprocess.run([sys.executable, str(ROOT / "neurons" / entry), "--help"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def miner_help() -> str:
    return _help("miner.py")


def test_production_miner_help_lists_no_adversarial_behaviour(miner_help: str) -> None:
    assert "--wallet.name" in miner_help and "--train.inner_steps" in miner_help  # it is the real help
    assert "behaviour" not in miner_help.lower() and "adversary" not in miner_help.lower()
    assert "poison" not in miner_help.lower()
    found = [b for b in ATTACKS if re.search(rf"(?<![\w.-]){re.escape(b)}(?![\w-])", miner_help)]
    assert not found, found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def test_nothing_under_subnet_miner_imports_pickle_or_the_adversaries() -> None:
    sources = sorted((ROOT / "subnet" / "miner").rglob("*.py"))
    assert sources and any(p.name == "loop.py" for p in sources)
    for path in [*sources, ROOT / "neurons" / "miner.py", ROOT / "subnet" / "node" / "entry.py"]:
        bad = {n for n in _imports(path) if n == "pickle" or n.startswith(("pickle.", "subnet.adversary"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_production_loop_does_not_load_the_adversary_package() -> None:
    code = ("import sys, subnet.node.entry, subnet.miner.loop, subnet.node.config; "
            "print(sorted(m for m in sys.modules if m.startswith('subnet.adversary')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_adversary_entry_lists_the_behaviours() -> None:
    out = _help("adversary_miner.py")
    assert "--adversary.behaviour" in out and "TESSERA_ADVERSARY_BEHAVIOUR" in out
    assert "--adversary.poison_scale" in out and "--wallet.name" in out  # the miner's flags too
    for b in BEHAVIOURS:
        assert b in out, b


def test_demo_runs_adversaries_through_their_own_entry_point() -> None:
    from subnet.adversary.config import AdversaryNeuronConfig
    from subnet.config import parse_config
    from subnet.demo import Bootstrap, Neuron, neuron_argv
    from subnet.node.config import MinerNeuronConfig

    boot = Bootstrap(netuid=1, wallet_path=Path("/w"), validator=Neuron(name="validator", hotkey="default", uid=1),
                     miners=(), raw={})
    who = Neuron(name="miner-0", hotkey="default", uid=2)
    common = dict(boot=boot, network="devnet", run_dir=Path("/r"), preset="tiny", debug=False)
    honest = neuron_argv("python", "miner", who, behaviour="honest", **common)
    assert honest[1].endswith("neurons/miner.py") and not any("adversary" in a for a in honest)
    parse_config(MinerNeuronConfig, honest[2:], {})
    noise = neuron_argv("python", "miner", who, behaviour="noise", **common)
    assert noise[1].endswith("neurons/adversary_miner.py")
    assert parse_config(AdversaryNeuronConfig, noise[2:], {}).adversary.behaviour == "noise"


def test_harness_and_bench_pass_adversary_flags_only_to_the_adversary_entry() -> None:
    from types import SimpleNamespace

    from harness.network import Network

    started: dict[str, list[str]] = {}
    procs = SimpleNamespace(start=lambda name, argv: started.setdefault(name, argv))
    boot = SimpleNamespace(netuid=1, wallet_path=Path("/w"), miners=[SimpleNamespace(wallet=f"m{i}") for i in range(2)])
    net = Network(devnet=SimpleNamespace(network="devnet"), root=Path("/r"), boot=boot, procs=procs)
    net.start_miner(0)
    net.start_miner(1, "scaled", ["--adversary.poison_scale", "10"])
    assert started["miner0-honest"][1].endswith("neurons/miner.py")
    assert not any("adversary" in a or "behaviour" in a for a in started["miner0-honest"])
    adv = started["miner1-scaled"]
    assert adv[1].endswith("neurons/adversary_miner.py") and adv[-4:] == [
        "--adversary.behaviour", "scaled", "--adversary.poison_scale", "10"]

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from adversaries import _label_argv
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert _label_argv("scaled:1000") == ("scaled", ["--adversary.poison_scale", "1000"])


def test_adversary_miner_overrides_only_the_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from subnet.adversary.miner import AdversaryMiner
    from subnet.miner.loop import Miner
    from subnet.protocol.windows import WindowParams

    def miner(behaviour: str) -> AdversaryMiner:
        m = AdversaryMiner.__new__(AdversaryMiner)
        m.behaviour, m._stop = behaviour, False
        m.rt = SimpleNamespace(chain=SimpleNamespace(block=lambda: 100), window_params=WindowParams(window_blocks=10))
        return m

    assert Miner.behaviour == "honest" and miner("honest")._too_late(3)  # block 100 is past window 3
    assert not miner("late")._too_late(3)  # uploads after the deadline on purpose
    monkeypatch.setattr(Miner, "_honest", lambda self, w, mine, fragment, header: (b"honest", {"w": w}))
    assert miner("honest")._produce(3, None, None, None, [], {}) == (b"honest", {"w": 3})
