#!/usr/bin/env python3
"""Benchmark of the hot-key overflow lane on the local stack (Tansu + chdb-http), stdlib only.

    deploy/local/bench_hot_keys.sh [--events 200000] [--hot-share 0.3] [--partitions 4]
                                   [--window-records 10000] [--max-per-window 1000]
                                   [--rate 0] [--modes off,on] [--bin-dir target/release] [--keep]

One fan sends --hot-share of the menu clicks (keys app_id|openid, so all its clicks are in
one partition); the rest come from --fans fans. For each mode, on a fresh private stack
(stack.sh up on free ports in a temp dir, nothing else installed): the account and menu
buttons of deploy/local/dims are loaded, then either the whole stream is produced first
with `wxpulse events load` (a backlog; the services then start and are timed), or, with
--rate, the services start and the stream is produced live at --rate events/s, each
second's events one `wxpulse events load` stamped with the wall clock; the modes:
  off: one wxpulse-menu-clicks (overflow.enabled = false);
  on:  one wxpulse-menu-clicks with overflow.enabled = true and one with
       overflow.lane = overflow (the same binary, its own group).
Every 0.5 s it reads, per partition, the rows in ClickHouse (kafka_topic, kafka_partition)
and the consumer lag each process reports (wxpulse_source_consumer_lag_events). It prints,
per source partition: events, when all of its rows were in ClickHouse (for the hot
partition with the lane: its primary rows and the lane's rows), the peak lag and the lag at
a few instants. The lane's rows are attributed to the hot partition (checked: they are the
hot fan's only). Live, it also prints each partition's freshness (ingested_at -
server_time: p50, p99, max). Done is decided by ClickHouse counts: every event exactly once.
A benchmark, not a test: exits 0 whatever the figures, 1 if something broke.
"""
import argparse
import csv
import json
import os
import random
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

LOCAL = Path(__file__).resolve().parent
REPO = LOCAL.parent.parent
STACK = LOCAL / "stack.sh"
TOPIC = "wxpulse.menu_clicks"
OVERFLOW = f"{TOPIC}.overflow"
APP = "wxb00a00"
HOT = "oHOT_BENCH_0001"
DB = "wxpulse"
STALL_S = 60
CHECKPOINTS = (1, 2, 5, 10, 20, 30, 60)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def partition_of(key, partitions):
    """librdkafka's default partitioner (consistent_random) for a keyed record: CRC-32 of
    the key modulo the partition count. Checked against the rows at the end."""
    return zlib.crc32(key.encode()) % partitions


def draw_stream(args):
    """Who clicks what, in order: [(openid, event key)], events per partition, hot partition."""
    buttons = [r["event_key"] for r in csv.DictReader(open(LOCAL / "dims" / "menu_button.csv"))
               if r["app_id"] == APP]
    rng = random.Random(17)
    events, per_partition = [], [0] * args.partitions
    for _ in range(args.events):
        openid = HOT if rng.random() < args.hot_share else f"oBENCH_{rng.randrange(args.fans):06d}"
        events.append((openid, rng.choice(buttons)))
        per_partition[partition_of(f"{APP}|{openid}", args.partitions)] += 1
    return events, per_partition, partition_of(f"{APP}|{HOT}", args.partitions)


def write_lines(path, events, first, start_ms, step_ms):
    """events[i] as JSON Lines, event i + first received at start_ms + i * step_ms."""
    with open(path, "w") as f:
        for i, (openid, key) in enumerate(events):
            server = int(start_ms + i * step_ms)
            f.write(json.dumps({
                "event_id": f"00000000-0000-4000-8000-{i + first:012x}", "app_id": APP, "openid": openid,
                "client_time": server - 500, "server_time": server, "event": "CLICK",
                "event_key": key}) + "\n")


class Run:
    """One mode on its own stack."""

    def __init__(self, args, mode, events, work):
        self.args, self.mode, self.events, self.work = args, mode, events, work
        self.dir = Path(tempfile.mkdtemp(prefix=f"wxpulse-bench-hot-{mode}-"))
        self.kafka_port, self.ch_port = free_port(), free_port()
        self.brokers, self.ch = f"127.0.0.1:{self.kafka_port}", f"http://127.0.0.1:{self.ch_port}"
        self.env = dict(os.environ, WXPULSE_STACK_DIR=str(self.dir), WXPULSE_KAFKA_PORT=str(self.kafka_port),
                        WXPULSE_CH_PORT=str(self.ch_port), WXPULSE_KAFKA_STORAGE="sqlite")
        self.bin = Path(args.bin_dir)
        self.cli = [str(self.bin / "wxpulse"), "--brokers", self.brokers, "--clickhouse", self.ch]
        self.procs, self.metrics = {}, {}

    def run(self, *cmd):
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p.stdout

    def sql(self, query):
        req = urllib.request.Request(f"{self.ch}/?{urllib.parse.urlencode({'database': DB})}",
                                     data=query.encode())
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"ClickHouse: {e.read().decode().strip()}\n  query: {query}") from None

    def setup(self):
        self.run(str(STACK), "up")
        (self.dir / "logs").mkdir(exist_ok=True)
        if self.args.no_header_index:
            # Tansu 0.6 (sqlite) keeps record headers in a table without an index: each
            # record fetched scans every header stored, so the lane's topic (two headers per
            # record) slows down quadratically and, at tens of thousands of diverted records,
            # the broker spins a core and answers nothing (seen with 200,000 events).
            # stack.sh adds the index a broker would have; --no-header-index measures
            # without it.
            db = sqlite3.connect(self.dir / "kafka" / "kafka.db", timeout=30)
            db.execute("DROP INDEX IF EXISTS wxpulse_header_record")
            db.commit()
            db.close()
        self.run(*self.cli, "migrate")
        self.run(*self.cli, "topics", "create", "--partitions", str(self.args.partitions))
        for dim in ("account", "menu_button"):
            self.run(*self.cli, "dims", "load", "--dimension", dim, "--file", str(LOCAL / "dims" / f"{dim}.csv"))
        if self.args.rate:
            print(f"  [{self.mode}] stack {self.dir}")
            return
        t0 = time.monotonic()
        stream = self.work / "backlog.jsonl"
        now = int(time.time() * 1000)  # received over the 50 minutes up to 10 minutes ago
        write_lines(stream, self.events, 0, now - 3_600_000, 3_000_000 / len(self.events))
        self.load(stream)
        print(f"  [{self.mode}] stack {self.dir}; {self.args.events:,} events produced in "
              f"{time.monotonic() - t0:.1f} s")

    def load(self, path):
        self.run(*self.cli, "events", "load", "--stream", "menu_clicks", "--file", str(path))

    def start(self, name, **settings):
        self.metrics[name] = f"127.0.0.1:{free_port()}"
        env = dict(self.env, WXPULSE__KAFKA__BROKERS=self.brokers, WXPULSE__CLICKHOUSE__URL=self.ch,
                   WXPULSE__METRICS__LISTEN=self.metrics[name], WXPULSE__LOG__LEVEL="warn",
                   WXPULSE__OVERFLOW__WINDOW_RECORDS=str(self.args.window_records),
                   WXPULSE__OVERFLOW__MAX_PER_WINDOW=str(self.args.max_per_window),
                   **{f"WXPULSE__OVERFLOW__{k.upper()}": v for k, v in settings.items()})
        log = open(self.dir / "logs" / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen([str(self.bin / "wxpulse-menu-clicks")], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def lags(self):
        """(topic, partition) -> lag, summed over the processes that report it."""
        out = {}
        for addr in self.metrics.values():
            try:
                with urllib.request.urlopen(f"http://{addr}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                continue
            for ln in text.splitlines():
                if not ln.startswith("wxpulse_source_consumer_lag_events{"):
                    continue
                labels = dict(kv.split("=", 1) for kv in ln[ln.index("{") + 1:ln.index("}")].split(","))
                key = (labels["topic"].strip('"'), int(labels["partition"].strip('"')))
                out[key] = out.get(key, 0) + int(float(ln.rsplit(" ", 1)[1]))
        return out

    def rows(self):
        out = {}
        for ln in self.sql("SELECT kafka_topic, kafka_partition, count() FROM menu_clicks "
                           "GROUP BY kafka_topic, kafka_partition FORMAT TSV").splitlines():
            topic, partition, n = ln.split("\t")
            out[(topic, int(partition))] = int(n)
        return out

    def measure(self):
        self.start("primary", enabled="true" if self.mode == "on" else "false")
        if self.mode == "on":
            self.start("lane", lane="overflow")
        t0 = time.monotonic()
        samples = []  # (t, rows, lags)

        def sample():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} (log: {self.dir / 'logs'})")
            rows = self.rows()
            samples.append((time.monotonic() - t0, rows, self.lags()))
            return sum(rows.values())

        if self.args.rate:
            self.produce_live(sample)
        last_change, last_total = time.monotonic(), -1
        while True:
            time.sleep(0.5)
            total = sample()
            now = time.monotonic()
            if total != last_total:
                last_change, last_total = now, total
            if total >= self.args.events:
                break
            if now - last_change > STALL_S:
                print(f"  ! [{self.mode}] rows stopped at {total:,} of {self.args.events:,}")
                return samples, False
        ids = int(self.sql("SELECT uniqExact(event_id) FROM menu_clicks").strip())
        lane_fans = int(self.sql(f"SELECT uniqExact(fan_id) FROM menu_clicks WHERE kafka_topic = '{OVERFLOW}'")
                        .strip())
        ok = ids == total == self.args.events and lane_fans <= 1
        if not ok:
            print(f"  ! [{self.mode}] {total:,} rows, {ids:,} distinct event ids, {self.args.events:,} "
                  f"produced; the lane's rows are of {lane_fans} fans")
        return samples, ok

    def wait_owned(self):
        """Until every process owns a partition (joined its group, loaded the dimensions)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            owned = []
            for addr in self.metrics.values():
                try:
                    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=2) as r:
                        text = r.read().decode()
                except OSError:
                    text = ""
                owned.append(any(ln.startswith("wxpulse_source_assigned_partitions")
                                 and float(ln.rsplit(" ", 1)[1]) > 0 for ln in text.splitlines()))
            if all(owned):
                return
            time.sleep(0.5)
        raise RuntimeError("the services own no partition after 90 s")

    def produce_live(self, sample):
        """--rate events a second, each second's as one `wxpulse events load`, stamped with
        the wall clock (server_time) so that ingested_at - server_time is the freshness."""
        self.wait_owned()
        rate, n = self.args.rate, len(self.events)
        start, behind = time.time(), 0.0
        for c, first in enumerate(range(0, n, rate)):
            wait = start + c - time.time()
            if wait > 0:
                time.sleep(wait)
            behind = max(behind, -wait)
            chunk = self.events[first:first + rate]
            path = self.work / f"live-{self.mode}.jsonl"
            write_lines(path, chunk, first, int(time.time() * 1000), 1000 / len(chunk))
            self.load(path)
            sample()
        took = time.time() - start
        print(f"  [{self.mode}] {n:,} events produced live in {took:.1f} s ({n / took:,.0f}/s; "
              f"at most {behind:.1f} s behind schedule)")

    def freshness(self):
        """Per (topic, partition): rows, p50, p99 and max of ingested_at - server_time, ms."""
        out = {}
        for ln in self.sql(
                "SELECT kafka_topic, kafka_partition, count(), "
                "quantileExact(0.5)(d), quantileExact(0.99)(d), max(d) FROM "
                "(SELECT kafka_topic, kafka_partition, "
                "toInt64(toUnixTimestamp64Milli(ingested_at) - toUnixTimestamp64Milli(server_time)) AS d "
                "FROM menu_clicks) GROUP BY kafka_topic, kafka_partition FORMAT TSV").splitlines():
            topic, partition, *figures = ln.split("\t")
            out[(topic, int(partition))] = tuple(map(int, figures))
        return out

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if not self.args.keep:
            subprocess.run([str(STACK), "down", "--purge"], env=self.env, capture_output=True, check=False)


def fmt(x):
    return "-" if x is None else f"{x:,}"


def report(mode, samples, per_partition, hot):
    """Per source partition: events, when all its rows were in, peak lag, lag at checkpoints."""
    final, end = samples[-1][1], samples[-1][0]
    first = next((t for t, rows, _ in samples if rows), end)
    checkpoints = [c for c in CHECKPOINTS if c <= end]
    print(f"\n== lane {mode}: {'one primary' if mode == 'off' else 'primary + overflow lane'}; "
          f"first rows {first:.1f} s after the services started")
    print(f"  {'partition':<12}{'events':>9}{'rows in at':>12}{'peak lag':>10}  lag at "
          + " ".join(f"{c:>6}s" for c in checkpoints))
    result = {}
    sources = [(TOPIC, p) for p in range(len(per_partition))]
    lanes = sorted(k for k in final if k[0] == OVERFLOW)
    for key in sources + lanes:
        topic, p = key
        want = final.get(key, 0)
        done = next((t for t, rows, _ in samples if rows.get(key, 0) >= want), end)
        if topic == TOPIC and p != hot and want < per_partition[p]:
            done = float("inf")  # never complete
        lag = [lags.get(key) for _, _, lags in samples]
        peak = max((x for x in lag if x is not None), default=None)
        at = []
        for c in checkpoints:
            before = [lags.get(key) for t, _, lags in samples if t <= c]
            at.append(before[-1] if before and before[-1] is not None else None)
        name = f"{p}{' (hot)' if p == hot else ''}" if topic == TOPIC else f"overflow {p}"
        events = per_partition[p] if topic == TOPIC else want
        print(f"  {name:<12}{events:>9,}{done:>11.1f}s{fmt(peak):>10}  lag at "
              + " ".join(f"{fmt(x):>7}" for x in at))
        result[key] = done
    hot_done = max([result[(TOPIC, hot)]] + [result[k] for k in lanes])
    if final.get((TOPIC, hot), 0) + sum(final[k] for k in lanes) < per_partition[hot]:
        hot_done = float("inf")
    others = [result[(TOPIC, p)] for p in range(len(per_partition)) if p != hot]
    print(f"  all rows of the hot partition in at {hot_done:.1f} s; the other partitions' at "
          f"{min(others):.1f}-{max(others):.1f} s (lags: librdkafka statistics, sampled every 0.5 s)")
    primary_rows = {p: final.get((TOPIC, p), 0) for p in range(len(per_partition))}
    lane_rows = sum(final[k] for k in lanes)
    expected = dict(enumerate(per_partition))
    seen = dict(primary_rows)
    seen[hot] += lane_rows
    if seen != expected:
        print(f"  ! rows per partition {seen} differ from the predicted {expected} (partitioner?)")
    return hot_done, max(others)


def live_report(mode, fresh, hot):
    """Freshness (ingested_at - server_time) per partition; returns (hot p99, others' worst p99)."""
    print(f"  freshness, ms (ingested_at - server_time), lane {mode}:")
    print(f"  {'partition':<14}{'rows':>9}{'p50':>9}{'p99':>9}{'max':>9}")
    for (topic, p), (n, p50, p99, top) in sorted(fresh.items()):
        name = (f"{p}{' (hot)' if p == hot else ''}" if topic == TOPIC else f"overflow {p}")
        print(f"  {name:<14}{n:>9,}{p50:>9,}{p99:>9,}{top:>9,}")
    hot_p99 = max(f[2] for k, f in fresh.items() if k == (TOPIC, hot) or k[0] == OVERFLOW)
    others = max(f[2] for k, f in fresh.items() if k[0] == TOPIC and k[1] != hot)
    return hot_p99, others


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--hot-share", type=float, default=0.3)
    ap.add_argument("--fans", type=int, default=20_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--window-records", type=int, default=10_000)
    ap.add_argument("--max-per-window", type=int, default=1_000)
    ap.add_argument("--modes", default="off,on")
    ap.add_argument("--rate", type=int, default=0,
                    help="events/s produced while the services run (default 0: a backlog first)")
    ap.add_argument("--bin-dir", default=str(REPO / "target" / "release"))
    ap.add_argument("--keep", action="store_true", help="leave the stacks up (and their data)")
    ap.add_argument("--no-header-index", action="store_true",
                    help="leave Tansu's record-header table without an index (see Run.setup)")
    args = ap.parse_args()
    for b in ("wxpulse", "wxpulse-menu-clicks"):
        if not (Path(args.bin_dir) / b).exists():
            sys.exit(f"{args.bin_dir}/{b} missing: cargo build --release -p wxpulse-cli -p wxpulse-menu-clicks")
    work = Path(tempfile.mkdtemp(prefix="wxpulse-bench-hot-"))
    events, per_partition, hot = draw_stream(args)
    print(f"{args.events:,} menu clicks, {args.hot_share:.0%} from one fan ({APP}|{HOT}, partition {hot}); "
          f"events per partition {per_partition}; window {args.window_records:,} offsets, "
          f"{args.max_per_window:,} per key; binaries {args.bin_dir}")
    broken, summary = False, {}
    for mode in args.modes.split(","):
        run = Run(args, mode, events, work)
        try:
            run.setup()
            samples, ok = run.measure()
            broken |= not ok
            summary[mode] = report(mode, samples, per_partition, hot)
            if args.rate:
                summary[mode] = live_report(mode, run.freshness(), hot)
        except (RuntimeError, OSError) as e:
            print(f"  ! [{mode}] {e}")
            broken = True
        finally:
            run.stop()
    if summary and args.rate:
        print(f"\n== summary: freshness p99 at {args.rate:,} events/s (ms, ingested_at - server_time)")
        for mode, (hot_p99, others) in summary.items():
            print(f"  lane {mode:<3}  hot partition (and its lane) {hot_p99:7,}   other partitions (worst) {others:7,}")
    elif summary:
        print("\n== summary: seconds from service start until all rows of a partition are in ClickHouse")
        for mode, (hot_done, others) in summary.items():
            print(f"  lane {mode:<3}  hot partition {hot_done:6.1f} s   other partitions (slowest) {others:6.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
