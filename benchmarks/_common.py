"""What the benchmark drivers share: paths, pinning, case subprocesses, the table, the docs blocks.

Imported by ``benchmarks/tracking.py`` and ``benchmarks/registry.py`` (both run with Steward's venv
from the repository root, so this directory is on ``sys.path``); ``peer_mlflow_registry.py`` takes
``MLFLOW_QUIET_ENV`` from here too, so only the standard library is imported at module level.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
PEER_VENV = BENCH_DIR / ".peers" / "mlflow"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_MLFLOW = PEER_VENV / "bin" / "mlflow"
STEWARD_PYTHON = Path(sys.executable)
STEWARD_CLI = STEWARD_PYTHON.parent / "steward"
DOCS_PATH = ROOT / "docs" / "benchmarks.md"
DOCS_INTRO = (
    "# Benchmarks\n\nFigures from the scripts in `benchmarks/`, each run against its peer on the "
    "same machine. Peers are installed by `bash benchmarks/setup_peers.sh`.\n\n"
)

CLIENT_CORE = "0"
SERVER_CORE = "1"
CASE_TIMEOUT = 3600.0

# Keep MLflow off the network and free of background work (set before it is imported).
MLFLOW_QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}

HEADERS = ["case", "Steward", "MLflow", "ratio", "Steward goal", "met?"]


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def can_pin() -> bool:
    """Whether client and server can be pinned to cores 0 and 1."""
    try:
        cores = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return False
    return shutil.which("taskset") is not None and {0, 1} <= cores


def pinned(core: str, cmd: list[str], pin: bool) -> list[str]:
    """``cmd`` prefixed with ``taskset -c core`` when pinning is possible."""
    return ["taskset", "-c", core, *cmd] if pin else cmd


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mlflow_env() -> dict[str, str]:
    """Environment for MLflow processes: quiet, and nothing of Steward's venv leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    env.update(MLFLOW_QUIET_ENV)
    return env


def steward_env(home: Path) -> dict[str, str]:
    """Environment for Steward processes: the repository's ``src`` importable, home in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["STEWARD_HOME"] = str(home)
    return env


def run_json(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = CASE_TIMEOUT) -> dict[str, Any]:
    """Run ``cmd`` and return the JSON object on the last ``{``-line of its stdout.

    A failure is returned as ``{"error": ...}`` with the tail of stderr, so one broken case
    does not stop the others.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return {"error": f"exit code {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def steward_version() -> str:
    """The installed ``steward-ml`` version, or ``"unknown"``."""
    try:
        from importlib.metadata import version

        return version("steward-ml")
    except Exception:
        return "unknown"


def mlflow_version() -> str | None:
    """The MLflow version in the peer venv, or None if the venv is missing or broken."""
    if not PEER_PYTHON.exists() or not PEER_MLFLOW.exists():
        return None
    out = subprocess.run(
        [str(PEER_PYTHON), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
        capture_output=True,
        text=True,
        env=mlflow_env(),
        timeout=60,
    )
    return out.stdout.strip() if out.returncode == 0 else None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt_ratio(ratio: float | None) -> str:
    """A speed-up as ``1,234x``."""
    if ratio is None:
        return "n/a"
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def print_table(rows: list[list[str]], title: str) -> None:
    """Print the table with rich if it is there, else as plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
        print(title)
        for r in [HEADERS, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title)
    for i, h in enumerate(HEADERS):
        table.add_column(h, justify="left" if i in (0, 4) else "right")
    for r in rows:
        table.add_row(*r)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def markdown_table(rows: list[list[str]]) -> list[str]:
    """The result table as Markdown lines (figures right-aligned)."""
    return [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(["---", "---:", "---:", "---:", "---", "---"]) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def machine_info(mlflow_version: str | None) -> dict[str, str]:
    """The facts about this machine that go next to the figures."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            commit = out.stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "mlflow": mlflow_version or "not installed",
        "commit": commit,
    }


def machine_line(info: dict[str, str]) -> str:
    """The ``Machine: …`` sentence of a docs block."""
    return (
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM, {info['os']}; "
        f"Python {info['python']}; MLflow {info['mlflow']} in its own venv (`benchmarks/setup_peers.sh`)."
    )


def write_docs(section: str, path: Path, begin: str, end: str, after: str | None = None) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) into ``path``.

    An existing block between ``begin`` and ``end`` is replaced. Otherwise the block goes right after
    the line ``after`` (another block's end marker) when the file has it, else at the end of the
    file; a missing file is created with the benchmarks page's heading.
    """
    if path.exists():
        text = path.read_text()
        if begin in text and end in text:
            before, rest = text.split(begin, 1)
            tail = rest.split(end, 1)[1].lstrip("\n")
            text = before + section + ("\n" + tail if tail else "")
        elif after is not None and after in text:
            head, tail = text.split(after, 1)
            tail = tail.lstrip("\n")
            text = head + after + "\n\n" + section + ("\n" + tail if tail else "")
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = DOCS_INTRO + section
    path.write_text(text)
