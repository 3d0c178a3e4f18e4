"""CPU seconds by process while a command runs: where a job's cores go, outside the
stages' own timers.

    python bench/process_cpu.py -- qcraft run configs/local.yaml ...

Every 0.2 s it reads ``/proc/<pid>/stat`` (user + system time) and ``/proc/<pid>/cmdline``
of every process on the machine, keeps the last reading of each, and at the end sums the
CPU each process used while the command ran, grouped by what it is: the driver, each
kind of Ray worker (by its process title, ``ray::<task or actor>``), Ray's own daemons
(raylet, gcs_server, dashboard...), and everything else. A process that starts and ends
between two readings is missed; one that ends loses at most its last 0.2 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: str) -> float | None:
    """User + system CPU seconds of one process (None: it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def title(pid: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def group(cmdline: str, driver_pid: str, pid: str) -> str:
    """What a process is, coarse enough to sum over."""
    if pid == driver_pid:
        return "driver (qcraft run: Ray Data's executor, progress, finalise)"
    if cmdline.startswith("ray::"):
        name = cmdline.split()[0][len("ray::") :]
        return "worker " + re.sub(r"\(.*", "(...)", name)
    for daemon in ("raylet", "gcs_server", "dashboard/agent", "dashboard", "log_monitor",
                   "monitor.py", "runtime_env/agent", "ray_client_server"):
        if daemon in cmdline:
            return f"ray daemon {daemon}"
    if "ray" in cmdline and "default_worker.py" in cmdline:
        return "worker (not yet titled)"
    return "other: " + cmdline[:60]


class Sampler(threading.Thread):
    """Reads every process's CPU time until stopped, and books what each used since its
    last reading to what it was doing then (a Ray worker's title changes with its task)."""

    def __init__(self, driver_pid: int, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.driver = str(driver_pid)
        self.interval_s = interval_s
        self.seen: dict[str, float] = {}  # pid -> CPU seconds at its last reading
        self.totals: Counter = Counter()
        # processes older than the command count from the first reading; new ones from
        # zero (what they used before their first reading is theirs too)
        self.older = {p for p in os.listdir("/proc") if p.isdigit()}
        self.stopping = threading.Event()

    def read(self) -> None:
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            before = self.seen.get(pid, cpu if pid in self.older else 0.0)
            self.seen[pid] = cpu
            if cpu > before:
                self.totals[group(title(pid), self.driver, pid)] += cpu - before

    def run(self) -> None:
        while not self.stopping.is_set():
            self.read()
            time.sleep(self.interval_s)
        self.read()

    def by_group(self) -> Counter:
        return Counter(self.totals)


def profile(cmd: list[str], **popen) -> tuple[subprocess.CompletedProcess, float, Counter]:
    """Run ``cmd``; return its result, its wall time and CPU seconds by process group."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)
    sampler = Sampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    sampler.stopping.set()
    sampler.join()
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    return done, wall, sampler.by_group()


def main() -> None:
    if "--" not in sys.argv:
        sys.exit(__doc__)
    cmd = sys.argv[sys.argv.index("--") + 1 :]
    res, wall, groups = profile(cmd)
    print(f"exit {res.returncode}, {wall:.1f} s wall, {sum(groups.values()):.1f} CPU s")
    for name, cpu in groups.most_common():
        if cpu >= 0.05:
            print(f"{cpu:8.2f}  {name}")


if __name__ == "__main__":
    main()
