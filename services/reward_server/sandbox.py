"""Running untrusted programs: bubblewrap (Debian's ``bubblewrap``), one sandbox per item.

The sandbox gets new user, PID, network, IPC, UTS and cgroup namespaces (no network at all:
not even the host's loopback, so neither Redis nor this server can be reached), a read-only view
of the system's ``/usr`` and of the interpreter's prefix and nothing else of the host's files, a
private size-limited ``/tmp``, an empty environment, a new session (no terminal to inject
into), no capabilities and an unprivileged uid. ``sandbox_harness.py`` runs inside and applies
per-case limits (CPU and wall time, memory, processes and threads, file and output size, open
files) to a forked child per case. The worker process that started it kills it (its whole
process group; the PID namespace then takes every process in it) at the item's wall deadline,
and the sandbox dies with its parent if that process dies.

Why bubblewrap: it is one small setuid-free binary in Debian, used by Flatpak, that sets up
exactly these namespaces and mounts and nothing more; nsjail is not in Debian's main archive
and firejail is a larger setuid program with a history of privilege escalations. Limits that
bubblewrap does not set are ``setrlimit`` in the harness (a cgroup would need a delegated
hierarchy, which a pod does not have by default).

The threat model and how to run it in Kubernetes: docs/reliability.md ("Code sandbox").
"""
from __future__ import annotations

import json
import marshal
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

HARNESS = (Path(__file__).with_name("sandbox_harness.py")).read_text()
_NOBODY = 65534  # the sandbox's uid inside its user namespace, and outside it when we are root
# No nested user namespaces inside the sandbox, where bubblewrap can set that up: it writes
# /proc/sys/user/max_user_namespaces, which a container's read-only /proc/sys refuses
# (``available`` then drops the flag for this process).
_NO_NESTED = ["--disable-userns"]


@dataclass(frozen=True)
class Limits:
    """Per case, inside the sandbox."""

    case_timeout_s: float = 2.0  # CPU time (whole seconds, rounded up); wall time twice that plus 1 s
    memory_bytes: int = 512 << 20  # address space per process
    processes: int = 16  # processes and threads of the sandbox's uid, harness included
    output_bytes: int = 1 << 20  # per file written, stdout included
    open_files: int = 64
    tmp_bytes: int = 64 << 20  # the private /tmp (memory-backed)


def interpreter() -> str:
    """``HARMO_SANDBOX_PYTHON``, else the base interpreter (not a virtual environment's: the
    sandbox sees the standard library only). As root, bubblewrap runs as nobody (see ``run``),
    who must be able to reach it: one under a private home falls back to the system's."""
    if os.environ.get("HARMO_SANDBOX_PYTHON"):
        return os.environ["HARMO_SANDBOX_PYTHON"]
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if os.geteuid() != 0 or _reachable(base):
        return base
    for system in ("/usr/local/bin/python3", "/usr/bin/python3"):
        if os.path.exists(system) and _reachable(os.path.realpath(system)):
            return os.path.realpath(system)
    return base


def _reachable(path: str) -> bool:
    """Whether any user may run ``path``: every directory above it searchable by others."""
    p = Path(path)
    return all(os.stat(d).st_mode & 0o001 for d in p.parents) and bool(os.stat(p).st_mode & 0o001)


@dataclass(frozen=True)
class Runner:
    """A language the sandbox runs: the names a code fence gives it, and the interpreter the
    sandbox starts. Each case's program is run by the harness's child for that language
    (``sandbox_harness.py``, ``RUNS``); a new language is an entry here and one there."""

    name: str
    fences: tuple[str, ...]
    interpreter: Callable[[], str]


RUNNERS: dict[str, Runner] = {"python": Runner("python", ("", "py", "python", "python3"), interpreter)}


def runner_for(fence: str) -> Runner | None:
    """The runner for a code fence's language tag ("" for none), or None."""
    return next((r for r in RUNNERS.values() if fence.lower() in r.fences), None)


def _prefix(python: str) -> str:
    """The interpreter's installation (``/usr`` for a system one), bound read-only."""
    return str(Path(python).resolve().parent.parent)


def command(limits: Limits, python: str | None = None) -> list[str]:
    python = python or interpreter()
    bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
    cmd = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
           "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
           "--uid", str(_NOBODY), "--gid", str(_NOBODY), *_NO_NESTED, "--cap-drop", "ALL",
           "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    prefix = _prefix(python)
    if not (prefix == "/usr" or prefix.startswith("/usr/")):
        cmd += ["--ro-bind", prefix, prefix]
    # No /proc: nothing of another process to read, and no procfs to mount, which a container
    # runtime's masked /proc paths would refuse (docs/reliability.md, "Code sandbox").
    cmd += ["--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
            "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp", python, "-I", "-S", "-B", "-c", HARNESS]
    return cmd


def run(job: dict, limits: Limits, wall_s: float, runner: Runner = RUNNERS["python"]) -> tuple[list[dict], str | None]:
    """Run ``job`` (``mode``, ``source``, ``cases``, and ``fn_name`` for call mode) in a fresh
    sandbox. Returns each case's result line in order (cases after a harness that died or ran
    out of ``wall_s`` are missing) and, when it ended early, why."""
    payload = marshal.dumps({**job, "language": runner.name, "limits": asdict(limits)})
    python = runner.interpreter()
    as_root = os.geteuid() == 0
    # As root, bubblewrap runs as nobody: the kernel does not count the processes of uid 0 against
    # a process limit, whatever user namespace they are in (a fork bomb would not be stopped).
    # bubblewrap's own environment is the sandbox init's: nothing of ours.
    _adopt_orphans()
    info_r, info_w = os.pipe()
    try:
        cmd = command(limits, python)
        cmd[1:1] = ["--info-fd", str(info_w)]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(info_w,),
            env={"PATH": "/usr/bin:/bin"}, start_new_session=True, cwd="/",
            **({"user": _NOBODY, "group": _NOBODY, "extra_groups": []} if as_root else {}))
    except BaseException:
        os.close(info_r)
        raise
    finally:
        os.close(info_w)
    try:
        out, err = proc.communicate(payload, timeout=wall_s)
        ended = None if proc.returncode == 0 else "the program killed the test harness" \
            if proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL, 137) else \
            f"the sandbox exited with status {proc.returncode}: {err.decode(errors='replace')[-300:]}"
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, _ = proc.communicate()
        ended = f"the item's cases took over {wall_s:g}s in all"
    finally:
        _reap(info_r)
    return _frames(out), ended


def _frames(out: bytes) -> list[dict]:
    """The harness's result frames, in case order, up to the first that is cut or out of place."""
    results: list[dict] = []
    pos = 0
    while pos + 4 <= len(out):
        n = int.from_bytes(out[pos:pos + 4], "little")
        try:
            r = marshal.loads(out[pos + 4:pos + 4 + n])
        except (EOFError, ValueError, TypeError):
            break
        if not (isinstance(r, dict) and r.get("i") == len(results)):
            break
        results.append(r)
        pos += 4 + n
    return results


@lru_cache(maxsize=1)
def _adopt_orphans() -> None:
    """Become a child subreaper: bubblewrap's inner process (the sandbox's init) can outlive the
    outer one by a moment, and an orphan left to a PID 1 that does not reap (a container's
    entrypoint, often) stays a zombie for good. Adopted, it is reaped by ``_reap``."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap(info_fd: int) -> None:
    """Wait for the sandbox's init (its pid is in bubblewrap's --info-fd report); it dies with
    the outer process (--die-with-parent), so this is short."""
    try:
        with os.fdopen(info_fd, "rb") as f:
            pid = json.loads(f.read(65536) or b"{}").get("child-pid")
    except (OSError, ValueError):
        return
    if not isinstance(pid, int):
        return
    for _ in range(2000):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:  # not ours (no subreaper here), or reaped already
            return
        time.sleep(0.001)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def status(*_: object, **__: object) -> str | None:
    """``available()`` in the shape of a worker job's function: the server asks a rule worker at
    start-up, where code runs (``app.py`` logs the answer)."""
    return available()


@lru_cache(maxsize=1)
def available() -> str | None:
    """None when a sandbox runs here, else why not (checked once per process)."""
    if not (shutil.which("bwrap") or os.path.exists("/usr/bin/bwrap")):
        return "bubblewrap (bwrap) is not installed"
    probe = {"mode": "stdio", "source": "print(input())", "cases": [{"stdin": "ok\n"}]}
    try:
        results, ended = run(probe, Limits(), 30)
        if not results and ended and "max_user_namespaces" in ended:
            _NO_NESTED.clear()
            results, ended = run(probe, Limits(), 30)
    except OSError as exc:
        return f"bubblewrap could not start: {exc}"
    if not results or results[0].get("stdout") != "ok\n":
        return f"bubblewrap could not run a program ({ended or 'no output'}); user namespaces may be disabled"
    return None

