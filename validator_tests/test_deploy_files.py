"""deploy/: what can be checked without Docker, pm2 or a systemd PID 1.

Dockerfiles parse into known instructions with the README's install steps in order; the compose file is
valid YAML with the services, volumes, restart policy and loopback-only ports deploy/README.md describes;
the pm2 file evaluates under node; the systemd units pass `systemd-analyze verify` (on a copy pointed at
this checkout); and every `--flag` and `TESSERA_*` variable the files use is one the real neurons' `--help`
lists (so a renamed flag breaks this test, not a deployment).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ROLES = ("miner", "validator")
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
# Variables the deploy files set that are not neuron flags: the container's Python and the store's S3 keys.
NOT_FLAGS = {"TESSERA_CACHE_DIR", "TESSERA_WALLETS"}


@functools.cache
def neuron_help(role: str) -> tuple[frozenset[str], frozenset[str]]:
    """(flags, TESSERA_* variables) the real entry point lists in --help."""
    out = subprocess.run([sys.executable, str(ROOT / "neurons" / f"{role}.py"), "--help"], capture_output=True,
                         text=True, timeout=180, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    flags = frozenset(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_.]*)", out.stdout))
    envs = frozenset(re.findall(r"\benv\s+(TESSERA_[A-Z0-9_]+)", out.stdout))
    assert "--wallet.name" in flags and "TESSERA_WALLET_NAME" in envs
    return flags, envs


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    steps: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        buf = f"{buf} {line}".strip() if buf else line
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
            continue
        word, _, rest = buf.partition(" ")
        steps.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path.name}: dangling line continuation"
    return steps


def readme_install_commands() -> list[str]:
    """The README's "Install by hand" block, as commands (the venv line is the host's, not the image's)."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"Install by hand.*?```bash\n(.*?)```", text, re.S)
    assert m, "README.md lost its 'Install by hand' block"
    cmds = [c.split("#")[0].strip() for c in m.group(1).splitlines()]
    return [c for c in cmds if c and "venv" not in c]


def _squash(cmd: str) -> str:
    return " ".join(cmd.split())


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_dockerfiles_install_what_the_readme_installs(variant: str):
    steps = dockerfile(DEPLOY / f"Dockerfile.{variant}")
    assert {s for s, _ in steps} <= INSTRUCTIONS, [s for s, _ in steps if s not in INSTRUCTIONS]
    froms = [a for s, a in steps if s == "FROM"]
    base = froms[-1]
    if variant == "cpu":
        assert base == "python:3.11-slim"
    else:
        assert re.fullmatch(r"nvidia/cuda:[\d.]+-(cudnn-)?runtime-ubuntu[\d.]+", base), base
        assert any("--python 3.11" in a for s, a in steps if s == "RUN")
    runs = [_squash(a) for s, a in steps if s == "RUN"]
    index = "https://download.pytorch.org/whl/" + ("cpu" if variant == "cpu" else "cu130")
    want = [c.replace("https://download.pytorch.org/whl/cpu", index) for c in readme_install_commands()]
    assert len(want) >= 3 and any("torch==2.13.0" in c for c in want)
    pos = []
    for cmd in want:  # each README command is one RUN step (or the tail of one), in the README's order
        hits = [i for i, r in enumerate(runs) if r == cmd or r.endswith("&& " + cmd)]
        assert hits, f"Dockerfile.{variant} lacks RUN {cmd!r}"
        pos.append(hits[0])
    assert pos == sorted(pos), f"Dockerfile.{variant} runs the README's install steps out of order"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in pyproject  # the image pins what the project pins
    copies = [a.split()[0] for s, a in steps if s == "COPY" and not a.startswith("--from")]
    for src in copies:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    assert {"pyproject.toml", "subnet", "neurons"} <= set(copies)
    cmd = json.loads(next(a for s, a in steps if s == "CMD"))
    assert (ROOT / cmd[1]).is_file()
    assert next(a for s, a in reversed(steps) if s == "USER") != "root"
    for _, args in (s for s in steps if s[0] == "ENV"):
        for name in re.findall(r"(TESSERA_[A-Z0-9_]+)=", args):
            assert name in NOT_FLAGS or name in neuron_help("miner")[1], name


def test_compose_file_runs_both_neurons_with_wallets_state_and_loopback_ports():
    doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(doc["services"]) == set(ROLES)
    declared = set(doc.get("volumes") or {})
    for role, svc in doc["services"].items():
        assert svc["restart"] in ("unless-stopped", "always", "on-failure")
        assert svc["build"]["dockerfile"] in ("deploy/Dockerfile.cpu", "deploy/Dockerfile.cuda")
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve().is_file()
        cmd = svc["command"]
        assert cmd[:2] == ["python", f"neurons/{role}.py"] and (ROOT / cmd[1]).is_file()
        flags, envs = neuron_help(role)
        assert all(a in flags for a in cmd[2:] if a.startswith("--")), cmd
        env = svc["environment"]
        for name in env:
            assert name in envs, f"{role}: {name} is not a variable of neurons/{role}.py"
        mounts = {}  # target -> (source, mode); a source may hold ${VAR:-default}
        for v in svc["volumes"]:
            spec, mode = (v[:-3], v[-2:]) if v.endswith((":ro", ":rw")) else (v, "rw")
            source, target = spec.rsplit(":", 1)
            mounts[target] = (source, mode)
        assert mounts["/wallets"][1] == "ro" and env["TESSERA_WALLET_PATH"] == "/wallets"
        named = mounts["/data"][0]
        assert named in declared and env["TESSERA_STATE_DIR"].startswith("/data/")
        for port in svc["ports"]:
            assert port.startswith("127.0.0.1:"), f"{role} publishes {port} beyond loopback"
        published = {int(p.rsplit(":", 1)[1]) for p in svc["ports"]}
        assert int(env["TESSERA_METRICS_PORT"]) in published
        if "TESSERA_DASHBOARD_PORT" in env:
            assert int(env["TESSERA_DASHBOARD_PORT"]) in published
        env_files = [e["path"] if isinstance(e, dict) else e for e in svc.get("env_file", [])]
        assert env_files == [f"./{role}.env"] and (DEPLOY / f"{role}.env.example").is_file()
    assert "dashboard" not in json.dumps(doc["services"]["miner"]).lower()  # the dashboard is the validator's


@pytest.mark.parametrize("role", ROLES)
def test_env_examples_name_only_real_variables(role: str):
    _, envs = neuron_help(role)
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=", (DEPLOY / f"{role}.env.example").read_text(), re.M)
    assert {"TESSERA_NETUID", "TESSERA_WALLET_NAME", "TESSERA_WALLET_HOTKEY", "TESSERA_STORE_LOCATION"} <= set(names)
    for name in names:
        assert name.startswith("AWS_") or name in envs, f"{role}.env.example: {name} is not a neuron variable"


def test_pm2_file_evaluates_and_starts_the_real_entry_points():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot evaluate deploy/ecosystem.config.js")
    out = subprocess.run([node, "-e", "process.stdout.write(JSON.stringify(require(process.argv[1])))",
                          str(DEPLOY / "ecosystem.config.js")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    apps = {a["name"]: a for a in json.loads(out.stdout)["apps"]}
    assert set(apps) == {f"tessera-{r}" for r in ROLES}
    for role in ROLES:
        app = apps[f"tessera-{role}"]
        assert Path(app["cwd"]) == ROOT and (ROOT / app["script"]).is_file() and app["script"] == f"neurons/{role}.py"
        assert app["interpreter"] == str(ROOT / ".venv" / "bin" / "python")
        # exit codes: clean stop, deregistered, refused as outdated
        assert app["autorestart"] is True and set(app["stop_exit_codes"]) == {0, 3, 4}
        assert app["kill_timeout"] >= 30000 and app["max_restarts"] > 0
        _, envs = neuron_help(role)
        for name in app["env"]:
            assert name.startswith("AWS_") or name in envs, f"pm2 {role}: {name}"


def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
            continue
        key, sep, value = line.partition("=")
        assert sep and current, f"{path.name}: bad line {raw!r}"
        sections[current].append((key.strip(), value.strip()))
    return sections


@pytest.mark.parametrize("role", ROLES)
def test_systemd_units_verify_and_use_real_flags(role: str, tmp_path: Path):
    path = DEPLOY / "systemd" / f"tessera-{role}@.service"
    unit = _unit(path)
    assert list(unit) == ["Unit", "Service", "Install"]
    svc = dict(unit["Service"])
    # 3 4: deregistered, refused as outdated (75 = auto-updated restarts)
    assert svc["Restart"] == "on-failure" and svc["RestartPreventExitStatus"] == "3 4"
    assert float(svc["RestartSec"]) > 0 and int(svc["TimeoutStopSec"]) >= 60 and svc["User"] != "root"
    assert dict(unit["Install"])["WantedBy"] == "multi-user.target"
    exe, script, *args = svc["ExecStart"].split()
    assert exe == "/opt/tessera/.venv/bin/python" and script == f"/opt/tessera/neurons/{role}.py"
    flags, envs = neuron_help(role)
    assert all(a.split("=")[0] in flags for a in args if a.startswith("--")), args
    for key, value in unit["Service"]:
        if key == "Environment":
            name = value.split("=", 1)[0]
            assert name == "PYTHONUNBUFFERED" or name in envs, f"{path.name}: {name}"
    assert "%i" in svc["EnvironmentFile"] and "%i" in svc["StateDirectory"]
    sa = shutil.which("systemd-analyze")
    if sa is None:
        pytest.skip("systemd-analyze is not installed: parsed by hand only")
    # The real unit, as an instance, pointed at this checkout (verify checks that ExecStart is executable).
    text = path.read_text().replace("/opt/tessera/.venv/bin/python", sys.executable).replace("/opt/tessera", str(ROOT))
    text = re.sub(r"^EnvironmentFile=", "EnvironmentFile=-", text, flags=re.M)
    text = re.sub(r"^(User|Group)=tessera$", r"\1=root", text, flags=re.M)
    inst = tmp_path / f"tessera-{role}@ci.service"
    inst.write_text(text)
    out = subprocess.run([sa, "verify", str(inst)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (out.stdout + out.stderr).splitlines() if str(inst.name) in ln or "tessera" in ln]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
