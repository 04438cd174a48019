"""What the benchmark drivers share: paths, pinning, case subprocesses, the table, the docs blocks.

Imported by ``benchmarks/tracking.py``, ``benchmarks/registry.py`` and ``benchmarks/data.py`` (all run
with Steward's venv from the repository root, so this directory is on ``sys.path``);
``peer_mlflow_registry.py`` takes ``MLFLOW_QUIET_ENV`` from here too, and ``peer_data.py`` the memory
probes, so only the standard library is imported at module level.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
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
# Memory and machine load (Linux; used inside case processes of either venv)
# --------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size now, in bytes (0 where ``/proc`` is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark to its RSS now (``/proc/self/clear_refs``, Linux 4.0+).

    Returns whether it worked; if not, ``peak_rss_bytes`` keeps counting from the process start.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """This process's RSS high-water mark, in bytes (``getrusage``: ``ru_maxrss`` is KiB on Linux)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def cpu_busy(seconds: float = 1.0) -> float | None:
    """The busy share of all CPUs over the next ``seconds`` (from ``/proc/stat``), or None."""
    import time

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total > 0 else None


def release_memory() -> None:
    """Hand freed memory back to the OS (Arrow's pool, glibc's heap), so that the RSS measures what is held.

    Called after a case loads its data and before its RSS is read: buffers the reader freed would
    otherwise stay resident, count as "data", and hide what the case itself needs.
    """
    import ctypes
    import gc

    gc.collect()
    if "pyarrow" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["pyarrow"].default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def wait_quiet(max_wait: float, limit: float = 0.15, sample: float = 0.5) -> float | None:
    """Wait until other work uses at most ``limit`` of the CPUs, or ``max_wait`` seconds passed.

    Meant for a benchmark process between its timed repeats (it is idle while it samples).
    Returns the busy share last seen (None where ``/proc/stat`` is missing).
    """
    import time

    deadline = time.monotonic() + max_wait
    busy = cpu_busy(sample)
    while busy is not None and busy > limit and time.monotonic() < deadline:
        busy = cpu_busy(sample)
    return busy


def fmt_bytes(n: float | None) -> str:
    """A byte count as ``1.23 GiB`` or ``456 MiB``."""
    if n is None:
        return "n/a"
    if abs(n) >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.0f} MiB"


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt_ratio(ratio: float | None) -> str:
    """A speed-up as ``1,234x``."""
    if ratio is None:
        return "n/a"
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def print_table(rows: list[list[str]], title: str, headers: list[str] | None = None) -> None:
    """Print the table with rich if it is there, else as plain text.

    ``headers`` defaults to ``HEADERS``; the first column and the one before the last two
    (the goal) are left-aligned, the others right-aligned.
    """
    headers = headers or HEADERS
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        print(title)
        for r in [headers, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i in (0, len(headers) - 2) else "right")
    for r in rows:
        table.add_row(*r)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def markdown_table(rows: list[list[str]], headers: list[str] | None = None) -> list[str]:
    """The result table as Markdown lines (figures right-aligned; the last two columns, goal and
    met?, and the first, left-aligned). ``headers`` defaults to ``HEADERS``."""
    headers = headers or HEADERS
    align = ["---", *["---:"] * (len(headers) - 3), "---", "---"]
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(align) + "|",
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


def machine_line(info: dict[str, str], peers: str | None = None) -> str:
    """The ``Machine: …`` sentence of a docs block; ``peers`` replaces the MLflow clause."""
    peers = peers or f"MLflow {info['mlflow']} in its own venv (`benchmarks/setup_peers.sh`)"
    return (
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM, {info['os']}; "
        f"Python {info['python']}; {peers}."
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


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop a server started in a process group of its own, and its workers: SIGTERM to the group,
    SIGKILL if it outlives ``timeout``, then wait until the group is gone (workers may outlive their
    parent for a moment)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for _ in range(40):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.25)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
