"""The test harness that runs *inside* the sandbox (``sandbox.py`` passes this file's text to the
sandbox's interpreter with ``-c``; nothing else of the project is visible there).

It reads one job on stdin (a ``marshal`` dict): the program, its cases and the limits. Per case it forks a
child that applies the limits and runs the program (a fork costs about a millisecond, a fresh
interpreter twenty: this is how a sandbox serves all of an item's cases). After each case,
every other process in the sandbox's PID namespace is killed (``kill(-1)``), so nothing a case
leaves behind runs into the next. One result frame per case goes to stdout.

Verdicts are not decided here: stdout/stdin outputs and call results are compared outside the
sandbox, against expected outputs that never enter it. The sandbox has no ``/proc``: the program
cannot reach the harness's stdout through ``/proc/<ppid>/fd``.

Only the standard library, and imports kept few (no json, re or enum: importing them costs
more than the bubblewrap start): the job comes and the results go as ``marshal`` frames.
"""
# ruff: noqa: E402 - CORE is taken before the other imports
import sys

CORE = frozenset(sys.modules)  # the interpreter's own, before this file imports anything

import _signal as signal  # the constants without the enum module
import builtins
import marshal
import os
import resource
import select
import time
import types

MODES = ("stdio", "call", "assert")
# What programs import most, loaded once per item rather than once per case (each case's child
# is a fork of this process and finds them loaded).
PRELOAD = ("collections", "math", "heapq", "itertools", "functools", "bisect", "re", "string")
PRISTINE_BUILTINS = dict(builtins.__dict__)  # before any program could patch the module


def _limits(lim):
    cpu = max(1, int(lim["case_timeout_s"] + 0.999))
    for what, soft in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, lim["memory_bytes"]),
                       (resource.RLIMIT_NPROC, lim["processes"]), (resource.RLIMIT_FSIZE, lim["output_bytes"]),
                       (resource.RLIMIT_NOFILE, lim["open_files"]), (resource.RLIMIT_CORE, 0)):
        hard = soft + 1 if what == resource.RLIMIT_CPU else soft
        resource.setrlimit(what, (soft, hard))


def _plain(value, depth=0, budget=None):
    """Whether a value is plain data (what a test may compare); an object with an ``__eq__`` of its
    own that says yes to anything is the classic way around an assert."""
    budget = budget if budget is not None else [1_000_000]
    budget[0] -= 1
    if budget[0] < 0 or depth > 100:
        return False
    t = type(value)
    if t in (int, float, bool, str, bytes, complex) or value is None:
        return True
    if t in (list, tuple, set, frozenset):
        return all(_plain(v, depth + 1, budget) for v in value)
    if t is dict:
        return all(_plain(k, depth + 1, budget) and _plain(v, depth + 1, budget) for k, v in value.items())
    return False


def _checked(fn):
    def call(*args, **kwargs):
        value = fn(*args, **kwargs)
        if not _plain(value):
            raise TypeError(f"{fn.__name__} returned an object of type {type(value).__name__}, not plain data")
        return value
    call.__name__ = getattr(fn, "__name__", "candidate")
    return call


def _emit(record):
    """One result frame on stdout: its length, then the marshalled dict."""
    data = marshal.dumps(record)
    os.write(1, len(data).to_bytes(4, "little") + data)


def _jsonable(value):
    """Tuples as lists and sets sorted, as JSON test outputs have them."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=repr)
    return value


RUNS = ("python",)  # the languages ``_child`` runs (sandbox.RUNNERS names them)


def _child(job, case, code, files, nonce):
    """In the forked child, a Python program: never returns."""
    fin, fout, ferr, fres = files
    os.dup2(fin, 0)
    os.dup2(fout, 1)
    os.dup2(ferr, 2)
    os.dup2(fres, 3)
    os.closerange(4, 1 << 16)
    os.setsid()
    _limits(job["limits"])
    sys.stdin = sys.__stdin__ = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
    write, mode = os.write, job["mode"]
    status = 0
    try:
        g = {"__name__": "__main__" if mode == "stdio" else "__solution__", "__builtins__": builtins}
        exec(code, g)
        if mode == "call":
            fn_name = job["fn_name"]
            cls = g.get("Solution")
            fn = getattr(cls(), fn_name) if isinstance(cls, type) and hasattr(cls, fn_name) else g.get(fn_name)
            if not callable(fn):
                raise NameError(f"the program defines no function {fn_name!r}")
            value = fn(*case["input"])
            if not _plain(value):
                raise TypeError(f"{fn_name} returned an object of type {type(value).__name__}, not plain data")
            out = repr(_jsonable(value))  # read back outside with ast.literal_eval
            write(3, (nonce + out).encode())
        elif mode == "assert":
            # The tests see the program's names, but builtins as they were before it ran and
            # fresh modules (all but the interpreter's core are imported again): what it patched
            # does not reach the asserts.
            for name in set(sys.modules) - CORE:
                del sys.modules[name]
            t = {k: (_checked(v) if isinstance(v, types.FunctionType) else v)
                 for k, v in g.items() if not k.startswith("__")}
            t.update(__name__="__test__", __builtins__=dict(PRISTINE_BUILTINS))
            exec(compile(case["test"], "test.py", "exec"), t)
            entry = case.get("entry_point")
            if entry:
                if entry not in t:
                    raise NameError(f"the program defines no function {entry!r}")
                t["check"](t[entry])
            write(3, nonce.encode())
    except SystemExit as exc:
        if mode != "stdio":
            status = 3  # the tests did not finish: an exit is never a pass
        elif exc.code is None or exc.code == 0:
            status = 0
        elif isinstance(exc.code, int):
            status = exc.code & 0xFF or 1
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except BaseException:  # noqa: BLE001 - the program's failure is the case's verdict
        try:
            import traceback

            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
        status = 1
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:  # noqa: BLE001 - output past the limit: the size says so
            pass
    os._exit(status)


def _head(path, limit):
    """(size, the first ``limit`` bytes as text) of a file the case wrote."""
    try:
        with open(path, "rb") as f:
            return f.seek(0, 2), (f.seek(0), f.read(limit))[1].decode("utf-8", "replace")
    except OSError:
        return 0, ""


def _tail(path, limit):
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - limit))
            return size, f.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


def _kill_the_rest():
    """Every process of the sandbox but this one and its init: what a case left running. Again
    until none is left (``kill(-1, 0)`` finds none), since a process forking while the signal
    goes round can miss it; the init reaps the orphans, this reaps its own children."""
    for _ in range(10_000):
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        try:
            os.kill(-1, 0)
        except ProcessLookupError:
            return
        except OSError:
            pass
        time.sleep(0.001)


def main():
    job = marshal.loads(sys.stdin.buffer.read())
    lim = job["limits"]
    if job.get("language", "python") not in RUNS:
        for i in range(len(job["cases"])):
            _emit({"i": i, "status": "unsupported_language", "stderr": str(job.get("language"))})
        return
    try:
        code = compile(job["source"], "solution.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        for i in range(len(job["cases"])):
            _emit({"i": i, "status": "syntax_error", "stderr": f"{type(exc).__name__}: {exc}"[:2000]})
        return
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    for i, case in enumerate(job["cases"]):
        paths = [f"/tmp/{i}.{n}" for n in ("in", "out", "err", "res")]
        with open(paths[0], "wb") as f:
            f.write(case.get("stdin", "").encode())
        files = [os.open(paths[0], os.O_RDONLY)] + [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                                                    for p in paths[1:]]
        nonce = os.urandom(16).hex()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(job, case, code, files, nonce)
        fd = os.pidfd_open(pid)
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        # CPU time is the limit; wall time gets room for a loaded machine, and stops sleepers
        timed_out = not poll.poll((2 * lim["case_timeout_s"] + 1) * 1000)
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, wstatus, usage = os.wait4(pid, 0)
        wall = time.monotonic() - start
        read = os.lseek(files[0], 0, os.SEEK_CUR) > 0  # the child shared this file's offset
        for f in files:
            os.close(f)
        os.close(fd)
        _kill_the_rest()
        # stdout is compared outside: what could match the expected output comes back, no more
        keep = min(case.get("keep", lim["output_bytes"]), lim["output_bytes"])
        out_size, stdout = _head(paths[1], keep)
        _, stderr = _tail(paths[2], 2000)
        _, res = _tail(paths[3], lim["output_bytes"])
        for p in paths:
            os.unlink(p)
        sig = os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None
        code_ = os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None
        cpu = usage.ru_utime + usage.ru_stime
        if timed_out or sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim["case_timeout_s"]):
            status = "timeout"
        elif out_size >= lim["output_bytes"]:
            status = "output_limit"
        elif "MemoryError" in stderr:
            status = "memory_limit"
        elif sig is not None:
            status = "killed"
        elif code_ != 0:
            status = "runtime_error"
        else:
            status = "ok"
        result = {"i": i, "status": status, "exit": code_, "signal": sig, "time": round(wall, 4),
                  "cpu": round(cpu, 4), "read_input": read, "stdout": stdout, "stdout_bytes": out_size,
                  "stderr": stderr}
        if job["mode"] != "stdio":
            result["passed"] = status == "ok" and res.startswith(nonce)
            if job["mode"] == "call" and result["passed"]:
                result["value"] = res[len(nonce):]
        _emit(result)


if __name__ == "__main__":
    main()
