"""The server's own CPU and memory during a run, read from /proc (Linux), when given its pid.

On a shared machine requests per second swing with whatever else runs; the server's CPU time per
request moves much less, and the peak RSS of each worker is a target of its own. The watch covers
the given process and all its descendants (uvicorn's workers), sampled from a thread.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

PROC = Path("/proc")
SAMPLE_SECONDS = 0.5
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def _cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _rss_bytes(fields: list[str]) -> int:
    return int(fields[21]) * _PAGE


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return sorted(found)


class ServerWatch:
    """Sums CPU over the run and keeps each process's peak RSS."""

    def __init__(self, pid: int) -> None:
        if _stat(pid) is None:
            raise ValueError(f"--server-pid {pid}: no such process (or no /proc here)")
        self._root = pid
        self._cpu: dict[int, float] = {}  # last CPU seen per process
        self._start_cpu: dict[int, float] = {}
        self._peak_rss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="server-watch", daemon=True)

    def __enter__(self) -> ServerWatch:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self, *, first: bool = False) -> None:
        for pid in descendants(self._root):
            fields = _stat(pid)
            if fields is None:
                continue
            cpu = _cpu_seconds(fields)
            if first or pid not in self._start_cpu:
                # A process born during the run counts from zero; one seen at the start from there.
                self._start_cpu[pid] = cpu if first else 0.0
            self._cpu[pid] = cpu
            self._peak_rss[pid] = max(self._peak_rss.get(pid, 0), _rss_bytes(fields))

    def summary(self, requests: int, seconds: float) -> dict[str, Any]:
        cpu = sum(self._cpu[pid] - self._start_cpu[pid] for pid in self._cpu)
        return {
            "pids": sorted(self._cpu),
            "cpu_s": round(cpu, 3),
            "cpu_ms_per_request": round(cpu / requests * 1000, 3) if requests else 0.0,
            "cores_busy": round(cpu / seconds, 2) if seconds > 0 else 0.0,
            "peak_rss_mib": {
                str(pid): round(rss / 2**20, 1) for pid, rss in sorted(self._peak_rss.items())
            },
        }
