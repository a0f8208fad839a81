"""A watchdog for the local Ray cluster a campaign starts: when the campaign's process dies
(``kill -9`` included, where no ``finally`` runs), the watchdog kills that cluster's
processes — the ones whose command line or open files name its directory (the cluster's
own temporary directory, given to ``ray.init`` and to the watchdog before the cluster
starts), and everything they started (Ray's agents and workers) — so none outlives the
campaign by more than a second. It touches no other Ray cluster, and it exits by itself
once the cluster is gone (a clean ``ray.shutdown()``).

    python -m nas.reaper DRIVER_PID CLUSTER_DIR     (started by ``RayPool``; detached)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie has exited
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can read."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out[int(entry)] = (ppid, cmd)
    return out


def descendants(*roots: int, procs: dict | None = None) -> set[int]:
    """Every process below ``roots`` (not the roots themselves)."""
    procs = _processes() if procs is None else procs
    found, frontier = set(), set(roots)
    while frontier:
        frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


def cluster_pids(session_dir: str) -> list[int]:
    """The processes of the cluster whose session directory is ``session_dir``: those naming
    it, and all their descendants."""
    procs = _processes()
    me = os.getpid()
    roots = {pid for pid, (_, cmd) in procs.items() if session_dir in cmd and pid != me}
    return sorted((roots | descendants(*roots, procs=procs)) - {me})


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): with the pid, its identity."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _holds_session_files(pid: int, session_dir: str) -> bool:
    """Whether the process has a file of the session open (Ray's agents and workers write
    their logs there, whatever their command line says)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(session_dir):
                return True
        except OSError:
            continue
    return False


def kill_cluster(session_dir: str, known: dict[int, str] | None = None) -> int:
    """SIGKILL the cluster's processes: those found now (by command line, parentage or the
    session's files they hold open), and those seen earlier (``known``: pid -> start time)
    that still run — Ray's agents outlive a dead raylet, reparented to init."""
    me = os.getpid()
    found = set(cluster_pids(session_dir)) | {pid for pid in _processes() if pid != me
                                              and _holds_session_files(pid, session_dir)}
    targets = {pid: _start_time(pid) for pid in found}
    for pid, started in (known or {}).items():
        if _start_time(pid) == started:
            targets[pid] = started
    for pid in targets:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(targets)


def watch(driver_pid: int, session_dir: str) -> None:
    seen, gone_since, known = False, None, {}
    while True:
        if not alive(driver_pid):
            # again until a pass finds nothing: the raylet may fork a worker while it is killed
            deadline = time.monotonic() + 5.0
            while kill_cluster(session_dir, known) and time.monotonic() < deadline:
                known = {}
                time.sleep(0.2)
            return
        pids = cluster_pids(session_dir)
        known.update({pid: _start_time(pid) for pid in pids if pid not in known})
        if pids:
            seen, gone_since = True, None
        elif seen:  # shut down cleanly: nothing to guard
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > 2.0:
                return
        time.sleep(POLL_S)


def start(session_dir: str) -> subprocess.Popen:
    """Watch this process's local cluster from a detached process of its own."""
    return subprocess.Popen([sys.executable, "-m", "nas.reaper", str(os.getpid()), session_dir],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
