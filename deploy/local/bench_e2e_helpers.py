#!/usr/bin/env python3
"""Helpers of bench_e2e.py: the CPU and memory of processes (Sampler), and, run as a
script, a plain Kafka reader that reads topics from the beginning with its own group and
discards every record, so the broker's cost of serving wxpulse can be compared with the
cost of serving a reader that does nothing (issue 16, item 2).

    bench_e2e_helpers.py --brokers HOST:PORT --expect N TOPIC...

librdkafka (confluent-kafka) with its defaults, except that it never commits. Stops at
--expect records, or after --idle seconds without one. Prints one JSON line: records,
seconds from the first to the last record and from start, and librdkafka's request counts
to the broker (statistics, brokers[].req), to set against the services' fetch pattern.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


class Tree(int):
    """A pid sampled with its children, live (CPU and memory) and exited (their CPU, which
    the parent reaped): a server that forks, as PostgreSQL does for each connection."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def print_logs(logs):
    """The last lines of every log in `logs`, to stderr, when a run broke."""
    for log in sorted(logs.glob("*.log")):
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if "CONFWARN" not in ln]
        print(f"--- {log.name} (last lines)\n" + "\n".join(lines[-8:]), file=sys.stderr)


def perf_record(pid, data, log):
    """`perf record` attached to `pid` until sent SIGINT; `WXPULSE_BENCH_PERF_ARGS` picks the
    event (default: cycles at 1999 Hz)."""
    events = os.environ.get("WXPULSE_BENCH_PERF_ARGS", "-F 1999").split()
    return subprocess.Popen(["perf", "record", *events, "-p", str(pid), "-o", str(data)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def children(pid):
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except OSError:
        return []


def proc_stat(pid):
    """(cpu seconds, VmRSS bytes, VmHWM bytes) of a live pid, or None. A tuple of pids (a
    broker and its storage server) is summed; a Tree counts its children too."""
    if isinstance(pid, tuple):
        parts = [s for s in map(proc_stat, pid) if s]
        return tuple(map(sum, zip(*parts, strict=True))) if parts else None
    if isinstance(pid, Tree):  # its memory summed over-counts what they share
        own, kids = proc_stat_one(pid, reaped=True), [proc_stat(c) for c in children(pid)]
        return own and tuple(map(sum, zip(own, *[k for k in kids if k], strict=True)))
    return proc_stat_one(pid)


def proc_stat_one(pid, reaped=False):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    # utime + stime (fields 14, 15); reaped: + cutime + cstime (16, 17)
    cpu = sum(map(int, fields[11:15 if reaped else 13])) / TICK
    mem = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in status.splitlines()
           if ln.startswith(("VmRSS", "VmHWM"))}
    return cpu, mem.get("VmRSS", 0), mem.get("VmHWM", 0)


def thread_cpu(pid):
    """{thread name (#tid when repeated): CPU s} of a live pid, or {} once it has gone."""
    out = {}
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            head, fields = (task / "stat").read_text().rsplit(")", 1)
            name = head.split("(", 1)[1]
            f = fields.split()
            name = f"{name}#{task.name}" if name in out else name
            out[name] = (int(f[11]) + int(f[12])) / TICK
    except OSError:
        return {}
    return out


class Sampler:
    """CPU delta and peak RSS of named processes over one phase (sampled every 0.5 s)."""

    def __init__(self, pids):
        self.pids, self.t0 = dict(pids), time.monotonic()
        self.cpu0, self.cpu, self.rss, self.hwm, self.history = {}, {}, {}, {}, []
        self.sample()
        self.cpu0 = dict(self.cpu)

    def add(self, name, pid):  # a process started during the phase counts from 0
        self.pids[name] = pid
        self.cpu0[name] = 0.0

    def finished(self, name, rusage):  # exited child: totals from wait4
        self.pids.pop(name)
        self.cpu[name] = rusage.ru_utime + rusage.ru_stime
        self.hwm[name] = rusage.ru_maxrss * 1024
        self.rss[name] = max(self.rss.get(name, 0), self.hwm[name])
        self.history.append((time.monotonic(), dict(self.cpu)))

    def sample(self):
        for name, pid in self.pids.items():
            s = proc_stat(pid)
            if s:
                self.cpu[name] = s[0]
                self.rss[name] = max(self.rss.get(name, 0), s[1])
                self.hwm[name] = s[2]
        self.history.append((time.monotonic(), dict(self.cpu)))

    def cpu_between(self, name, t_a, t_b):
        """CPU seconds of `name` between two sample times (the samples at or before each)."""
        at = [[c for t, c in self.history if t <= x + 0.01][-1].get(name, 0.0) for x in (t_a, t_b)]
        return at[1] - at[0]

    def table(self, title, until=None, events=None):
        """CPU from the phase start to `until` (default now; a stall at the end is cut off);
        with `events`, also CPU seconds per million of them. Returns {process: CPU s}."""
        until = until or time.monotonic()
        cpu_at = [c for t, c in self.history if t <= until + 0.01][-1]
        wall = until - self.t0
        per_m = f"{'CPU s/M ev':>11}" if events else ""
        print(f"\n  {title}: {wall:.1f} s wall; CPU % is of one core (2 cores = 200 %; the machine "
              "is shared, so wall and % move with others' load, CPU s much less)")
        print(f"  {'process':<22}{'CPU s':>9}{'CPU %':>8}{per_m}{'peak RSS MiB':>14}{'VmHWM MiB':>11}")
        out = {}
        for name in self.cpu:
            cpu = out[name] = cpu_at.get(name, self.cpu[name]) - self.cpu0.get(name, 0.0)
            per_m = f"{cpu * 1e6 / events:>11.1f}" if events else ""
            print(f"  {name:<22}{cpu:>9.1f}{100 * cpu / wall:>8.0f}{per_m}"
                  f"{self.rss[name] / MIB:>14.0f}{self.hwm[name] / MIB:>11.0f}")
        return out




def main():
    from confluent_kafka import Consumer  # the plain reader only (bench_e2e.sh installs it)

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--expect", type=int, required=True, help="stop after this many records")
    ap.add_argument("--idle", type=float, default=15.0, help="stop after this long without a record")
    ap.add_argument("--group", default=f"bench-plain-reader-{int(time.time())}")
    ap.add_argument("topics", nargs="+")
    args = ap.parse_args()
    stats = {}

    def on_stats(raw):
        s = json.loads(raw)
        for b in s.get("brokers", {}).values():
            if b.get("nodeid", -1) >= 0 or b.get("name", "").startswith("GroupCoordinator"):
                stats[b["name"]] = {k: v for k, v in b.get("req", {}).items() if v}

    c = Consumer({"bootstrap.servers": args.brokers, "group.id": args.group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "statistics.interval.ms": 1000, "stats_cb": on_stats})
    c.subscribe(args.topics)
    t0 = time.monotonic()
    n, first, last = 0, None, t0
    while n < args.expect and time.monotonic() - last < args.idle:
        msgs = c.consume(num_messages=10000, timeout=0.5)
        now = time.monotonic()
        for m in msgs:
            if m.error() is None:
                n += 1
        if msgs:
            first = first or now
            last = now
    time.sleep(1.1)  # one more statistics callback with the final request counts
    c.poll(0)
    c.close()
    print(json.dumps({"records": n, "seconds": last - t0, "from_first": last - (first or t0),
                      "requests": stats}))
    return 0 if n >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
