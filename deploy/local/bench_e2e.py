#!/usr/bin/env python3
"""End-to-end benchmark of wxpulse on the local stack (Tansu + chdb-http), stdlib only.

    deploy/local/bench_e2e.sh [--events 1000000] [--rate 20000] [--storage sqlite|memory|postgres]
                              [--live-dimensions] [--keep]

Starts a private stack on free ports in a temp dir, then:
  1. throughput: produces --events generated events (and the generator's orders), then
     a plain reader (bench_e2e_helpers.py: librdkafka, discards) reads the five topics
     from the beginning with its own group, then the five services start and are timed
     until ClickHouse holds every event (sustained consume -> ClickHouse events/s);
  2. floor: the same rows, read back from the raw tables as RowBinary, inserted straight
     into a second database with the same migrations (views firing), no Kafka: wall and
     ClickHouse CPU, and the ratio end to end / direct;
  3. latency: with the services running, `wxpulse-generate --live` produces rate x 30 s
     events stamped with their wall-clock server_time; event->queryable latency is
     ingested_at - server_time of each row (ingested_at = server-side insert time). The
     world is not republished (--live-dimensions does: that stalls Tansu on sqlite, and the
     producer's librdkafka broker thread then spins a core). If this phase breaks, it says
     so, with the generator's busiest threads, and the other figures are still printed.
Prints CPU seconds per million events and peak RSS of every process (each service, broker,
ClickHouse, generator, plain reader), and the targets with PASS/MISS. CPU seconds per event
hold on a shared machine; wall-clock rates and latencies do not (other processes' load).
"Done" is decided by ClickHouse counts, never Kafka lag (Tansu's memory engine reports wrong
high watermarks), and the rows are checked: each generated event exactly once.
Storage defaults to sqlite: with memory, records are lost and duplicated whenever a service
pauses consumption for backpressure (seen in every run; exact without pauses, and exact
on sqlite with pauses), so memory figures are only indicative. With postgres (stack.sh:
a private PostgreSQL), the broker's figures are Tansu's and the PostgreSQL server's together.
A benchmark, not a test: exits 0 whether targets are met or not, 1 if something broke.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from bench_e2e_helpers import MIB, Sampler, Tree, free_port, perf_record, print_logs, thread_cpu

LOCAL = Path(__file__).resolve().parent
REPO = LOCAL.parent.parent
BIN = REPO / "target" / "release"
STACK = LOCAL / "stack.sh"
SERVICES = ["menu-clicks", "qr-scans", "chat-messages", "article-reads", "orders"]
TABLES = {"menu_click": "menu_clicks", "qr_scan": "qr_scans",      # truth key -> raw table
          "chat_message": "chat_messages", "article_read": "article_reads",
          "order": "orders"}  # "order": the truth's conversions (purchases + refunds)
TOPICS = [f"wxpulse.{t}" for t in TABLES.values()]
DIRECT_DB = "wxpulse_direct"
TARGET_EPS, TARGET_P99_MS, TARGET_RSS_MIB = 100_000, 2000, 200
TARGET_SERVICE_US, TARGET_E2E_OVER_DIRECT = 2.0, 3.0            # issue 16, item 3
TARGET_RATE_VS_PLAIN, TARGET_BROKER_VS_PLAIN = 0.9, 1.2          # issue 16, item 2
LIVE_SECONDS = 30
STALL_S = 60  # give up when ClickHouse counts do not move for this long


def verdict(ok):
    return "PASS" if ok else "MISS"


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="wxpulse-bench-"))
        self.kafka_port, self.ch_port = free_port(), free_port()
        self.brokers = f"127.0.0.1:{self.kafka_port}"
        self.ch = f"http://127.0.0.1:{self.ch_port}"
        self.env = dict(os.environ, WXPULSE_STACK_DIR=str(self.dir),
                        WXPULSE_KAFKA_PORT=str(self.kafka_port), WXPULSE_CH_PORT=str(self.ch_port),
                        WXPULSE_KAFKA_STORAGE=args.storage)
        self.services, self.metrics = {}, {}  # name -> Popen, name -> metrics host:port
        self.broken = False  # ClickHouse did not end up with exactly the generated events
        self.live_error = None  # why the latency phase gave no figures, if it did not
        self.p99 = self.p50 = None
        self.plain = self.direct_figs = None
        self.cli = [str(BIN / "wxpulse"), "--brokers", self.brokers, "--clickhouse", self.ch]

    # ---------------------------------------------------------------- helpers
    def http(self, body, database="wxpulse", query=None, timeout=30):
        """POSTs `body` (bytes) to ClickHouse; with `query`, the body is its data."""
        q = {"database": database} | ({"query": query} if query else {})
        req = urllib.request.Request(f"{self.ch}/?{urllib.parse.urlencode(q)}", data=body)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            text = query or body[:300].decode(errors="replace")
            raise RuntimeError(f"ClickHouse: {e.read().decode().strip()}\n  query: {text[:300]}") from None

    def sql(self, query, database="wxpulse"):
        return self.http(query.encode(), database).decode()

    def run(self, *cmd, env=None):
        p = subprocess.run(cmd, env=env or self.env, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p

    def counts(self, where="1", expr="count()", database="wxpulse"):
        q = ", ".join(f"(SELECT {expr} FROM {t} WHERE {where})" for t in TABLES.values())
        return dict(zip(TABLES.values(), map(int, self.sql(f"SELECT {q}", database).split()), strict=True))

    def check(self, expected, where="1", database="wxpulse"):
        """Rows must be exactly the generated events: each once, none missing."""
        rows, ids = self.counts(where, database=database), self.counts(where, "uniqExact(event_id)", database)
        bad = {t: f"{rows[t]} rows, {ids[t]} distinct event_ids, {n} generated"
               for t, n in expected.items() if not rows[t] == ids[t] == n}
        for t, msg in bad.items():
            print(f"  ! {t}: {msg}")
        return not bad

    def stack_pid(self, component):
        return int((self.dir / "pids" / f"{component}.pid").read_text())

    def generate(self, sampler, events, truth, *extra, timeout=None):
        """Runs `wxpulse-generate`, sampling meanwhile; returns (wall s, its stderr tail, truth).
        Killed (and an error raised) if it runs longer than `timeout` s."""
        cmd = [str(BIN / "wxpulse-generate"), "--brokers", self.brokers, "--events", str(events), "--malformed-share", "0",
                          "--duplicate-share", "0", "--seed", str(int(time.time())),
                          "--truth", str(truth), *extra]
        err = open(self.dir / "logs" / "generate.log", "w+")
        t0, threads = time.monotonic(), {}
        p = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=True)
        self.services["generate"] = p
        sampler.add("wxpulse-generate", p.pid)
        while True:  # wait4 (not Popen.wait) for the child's own CPU time and max RSS
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if timeout and time.monotonic() - t0 > timeout:
                sampler.sample()
                sampler.table(f"generator killed after {timeout} s")
                os.killpg(p.pid, signal.SIGKILL)
                os.wait4(p.pid, 0)
                del self.services["generate"]
                err.seek(0)
                tail = [ln.strip() for ln in err.read().splitlines() if ln.strip()][-6:]
                raise RuntimeError(f"wxpulse-generate still running after {timeout} s, killed; "
                                   "its last lines:\n    " + "\n    ".join(tail))
            sampler.sample()
            threads = thread_cpu(p.pid) or threads
            time.sleep(0.5)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        del self.services["generate"]
        sampler.finished("wxpulse-generate", rusage)
        err.seek(0)
        tail = [ln.strip() for ln in err.read().splitlines() if ln.strip()]
        if p.returncode != 0:
            sampler.table(f"until wxpulse-generate failed ({wall:.0f} s)")
            top = sorted(threads.items(), key=lambda kv: -kv[1])[:4]
            print("  wxpulse-generate's busiest threads (CPU s): "
                  + ", ".join(f"{name} {cpu:.1f}" for name, cpu in top))
            err.seek(0)
            progress = [ln.strip() for ln in err.read().splitlines() if "[generate]" in ln]
            print("  its progress lines: " + (" | ".join(progress[-3:]) or "none"))
            raise RuntimeError(f"wxpulse-generate {shlex.join(cmd[3:])} failed ({p.returncode}):\n    "
                               + "\n    ".join(tail[-6:]))
        return wall, tail[-1] if tail else "", json.loads(truth.read_text())

    def wait_rows(self, sampler, expected, where="1"):
        """Polls ClickHouse until every table holds its expected count, or counts stop moving
        for STALL_S. Returns ({table: time it completed or last grew}, time of the first row,
        final counts); times are time.monotonic()."""
        changed, first, last, now = {}, None, {}, time.monotonic()
        self.table_first = {}  # table -> (time of its first rows, how many)
        while not all(last.get(t, -1) >= n for t, n in expected.items()):
            if now - max(changed.values(), default=now) > STALL_S:
                print(f"  ! counts stopped moving {STALL_S} s short of the generated events")
                self.broken = True
                break
            for name, p in self.services.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}")
            time.sleep(0.5)
            c, now = self.counts(where), time.monotonic()
            sampler.sample()
            if first is None and sum(c.values()) > 0:
                first = now
            changed.update({t: now for t in c if c[t] != last.get(t)})
            self.table_first.update({t: (now, c[t]) for t in c if c[t] and t not in self.table_first})
            last = c
        if not self.check(expected, where):
            self.broken = True
        return changed, first or now, last

    # ---------------------------------------------------------------- phases
    def setup(self):
        self.run(str(STACK), "up")
        (self.dir / "logs").mkdir(exist_ok=True)
        self.run(*self.cli, "migrate")
        self.run(*self.cli, "topics", "create", "--partitions", "4")
        print(f"stack: {self.dir}, kafka {self.brokers} (storage {self.args.storage}), "
              f"clickhouse {self.ch}")

    def start_services(self):
        for s in SERVICES:
            self.metrics[s] = f"127.0.0.1:{free_port()}"
            env = dict(self.env, WXPULSE__KAFKA__BROKERS=self.brokers, WXPULSE__CLICKHOUSE__URL=self.ch,
                       WXPULSE__METRICS__LISTEN=self.metrics[s], WXPULSE__LOG__LEVEL="warn")
            log = open(self.dir / "logs" / f"service-{s}.log", "w")
            self.services[s] = subprocess.Popen([str(BIN / f"wxpulse-{s}")], env=env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def base_pids(self):
        broker = self.stack_pid("kafka")
        pg = self.dir / "postgres" / "data" / "postmaster.pid"  # storage postgres: its server too
        broker = (broker, Tree(pg.read_text().split()[0])) if pg.exists() else broker
        return {"tansu (kafka)": broker, "chdb-http (python)": self.stack_pid("clickhouse")}

    @staticmethod
    def expected(truth):
        """Rows each raw table must end with: the valid events, and the orders' purchases
        and refunds (each once)."""
        c = truth["conversions"]
        return {TABLES[k]: v for k, v in truth["events"].items()} | {
            "orders": c["purchases"] + c["refunds"]}

    def throughput(self):
        n = self.args.events
        print(f"\n== 1. Throughput: {n} events produced first, then the five services consume them")
        sampler = Sampler(self.base_pids())
        wall, line, truth = self.generate(sampler, n, self.dir / "logs" / "truth-throughput.json")
        expected = self.expected(truth)
        produced = truth["records"] + truth["conversions"]["records"]
        dims = next((ln for ln in open(self.dir / "logs" / "generate.log") if "dimension records" in ln), "")
        print(f"  dimensions: {dims.split('[generate] ', 1)[-1].strip()}")
        print(f"  produce: {produced} records ({truth['records']} events, "
              f"{truth['conversions']['records']} orders), generate+produce {wall:.1f} s "
              f"({produced / wall:,.0f}/s); generator says: {line}")
        self.gen_cpu = sampler.table("during generate", events=produced)
        self.gen_rss = dict(sampler.hwm)
        self.plain_reader(produced)
        if not self.args.no_mirror:
            self.mirror()
        sampler = Sampler(self.base_pids())
        t0 = time.monotonic()
        self.start_services()
        for s in SERVICES:
            sampler.add(f"wxpulse-{s}", self.services[s].pid)
        profiler = self.profile(self.args.perf)
        done, first, got = self.wait_rows(sampler, expected)
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=120)
            print(f"  profile of wxpulse-{self.args.perf} (consume phase): "
                  f"perf report -i {self.perf_data()} --no-children")
        rows, wall = sum(got.values()), max(done.values()) - t0
        eps = rows / wall
        print(f"  consume -> ClickHouse: {rows:,} rows in {wall:.1f} s from service start = "
              f"{eps:,.0f} events/s  (first row visible after {first - t0:.1f} s; "
              f"{rows / max(wall - (first - t0), 0.5):,.0f} events/s from then)")
        for t, n_t in expected.items():
            print(f"    {t:<14}{got[t]:>10,} rows of {n_t:>9,}  done at {done[t] - t0:6.1f} s  "
                  f"{got[t] / (done[t] - t0):>10,.0f} events/s")
        self.cpu = sampler.table("consume phase (until the last row)", max(done.values()), events=rows)
        # Before the first row the services join their groups and load the dimensions (each
        # reads every dimension topic from the beginning); after it they consume the events.
        self.broker_steady = sampler.cpu_between("tansu (kafka)", first, max(done.values()))
        print(f"  broker CPU from the first row visible to the last: {self.broker_steady:.1f} s "
              f"({self.broker_steady * 1e6 / rows:.1f} s per million events; before it, startup and "
              f"dimension loads: {self.cpu['tansu (kafka)'] - self.broker_steady:.1f} s)")
        # Each service's CPU from its table's first rows to its last (startup and dimension
        # load excluded), per event it wrote in between.
        steady_cpu = sum(sampler.cpu_between(f"wxpulse-{s}", self.table_first[t][0], done[t])
                         for s, t in zip(SERVICES, TABLES.values(), strict=True))
        steady_rows = sum(got[t] - self.table_first[t][1] for t in TABLES.values())
        self.svc_steady_us = steady_cpu * 1e6 / max(steady_rows, 1)
        print(f"  services from each one's first rows to its last: {steady_cpu:.2f} CPU s for "
              f"{steady_rows:,} events = {self.svc_steady_us:.2f} us per event (startup and dimension "
              "load excluded)")
        self.fetch_pattern()
        self.eps, self.rss, self.rows, self.e2e_wall = eps, dict(sampler.hwm), rows, wall
        self.expected_rows = expected

    def profile(self, service):
        """`perf record` of one service's consume phase (--perf): librdkafka and the sink too."""
        if not service:
            return None
        return perf_record(self.services[service].pid, self.perf_data(), self.dir / "logs" / "perf.log")

    def perf_data(self):
        """Where --perf writes, outside the stack's directory (removed at teardown)."""
        return Path(tempfile.gettempdir()) / f"wxpulse-perf-{self.args.perf}.data"

    def fetch_pattern(self):
        """What each service did to consume (its /metrics): paused seconds (each pause and
        resume makes librdkafka drop what it had prefetched for the partition and fetch it
        again), inserts and rows per insert, dimension load time, rebalances."""
        want = {"wxpulse_source_events_consumed_total": "consumed", "wxpulse_source_paused_seconds_total": "paused s",
                "wxpulse_sink_batch_rows_count": "inserts", "wxpulse_sink_batch_rows_sum": "rows",
                "wxpulse_enrich_dimension_load_seconds": "dims load s",
                "wxpulse_source_rebalances_total": "rebalances"}
        print("\n  the services' consumption (their /metrics, at the last row):")
        for s, addr in self.metrics.items():
            got = dict.fromkeys(want.values(), 0.0)
            try:
                with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError as e:
                print(f"    {s:<14} ! /metrics: {e}")
                continue
            for ln in text.splitlines():
                name = ln.split("{")[0].split(" ")[0]
                if name in want and not ln.startswith("#"):
                    got[want[name]] += float(ln.rsplit(" ", 1)[1])
            per = got["rows"] / got["inserts"] if got["inserts"] else 0
            print(f"    {s:<14} consumed {got['consumed']:>9,.0f}  paused {got['paused s']:>6.1f} s  "
                  f"inserts {got['inserts']:>5,.0f} ({per:,.0f} rows each)  dimension load "
                  f"{got['dims load s']:.1f} s  rebalances {got['rebalances']:.0f}")

    def mirror(self):
        """Copies the fan profiles into ClickHouse once (`wxpulse dims mirror --once`), as the
        mirror a deployment runs beside the services keeps them: each service then starts
        from that copy and reads only the topic's tail, instead of every profile from the
        broker (README, "Start-up with 1,000,000 fan profiles"). `--no-mirror` measures the
        start from the topics alone."""
        sampler = Sampler(self.base_pids())
        env = dict(self.env, WXPULSE__KAFKA__BROKERS=self.brokers, WXPULSE__CLICKHOUSE__URL=self.ch,
                   WXPULSE__LOG__LEVEL="warn")
        t0 = time.monotonic()
        log = open(self.dir / "logs" / "mirror.log", "w+")
        p = subprocess.Popen([str(BIN / "wxpulse"), "dims", "mirror", "--once"], env=env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        sampler.add("wxpulse dims mirror", p.pid)
        while True:
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            sampler.sample()
            time.sleep(0.2)
        sampler.finished("wxpulse dims mirror", rusage)
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            tail = "\n    ".join(log.read().splitlines()[-12:])
            raise RuntimeError(f"wxpulse dims mirror --once failed ({os.waitstatus_to_exitcode(status)}); "
                               f"the end of {log.name}:\n    {tail}")
        profiles = self.sql("SELECT count() FROM fan_profiles").strip()
        print(f"\n  fan-profile mirror (once, before the services start; a deployment runs it "
              f"continuously): {profiles} profiles copied in {time.monotonic() - t0:.1f} s")
        sampler.table("during the mirror")

    def plain_reader(self, records):
        """A plain librdkafka reader (discards) of the same five topics, from the beginning
        with its own group, before the services start: its rate and the broker's CPU."""
        print(f"\n  plain reader (bench_e2e_helpers.py, confluent-kafka, no processing) of the same "
              f"{records:,} records, before the services start")
        sampler = Sampler(self.base_pids())
        cmd = [sys.executable, str(LOCAL / "bench_e2e_helpers.py"), "--brokers", self.brokers,
               "--expect", str(records), *TOPICS]
        out = open(self.dir / "logs" / "plain-reader.log", "w+")
        p = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        sampler.add("plain reader (python)", p.pid)
        t0 = time.monotonic()
        while True:
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > 600:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, rusage = os.wait4(p.pid, 0)
                break
            sampler.sample()
            time.sleep(0.25)
        sampler.finished("plain reader (python)", rusage)
        out.seek(0)
        lines = out.read().splitlines()
        try:
            res = json.loads(lines[-1])
        except (IndexError, ValueError):
            print("  ! plain reader gave no result:\n    " + "\n    ".join(lines[-8:]))
            return
        cpu = sampler.table("plain reader", t0 + res["seconds"], events=res["records"])
        rate = res["records"] / res["seconds"]
        broker = cpu["tansu (kafka)"] * 1e6 / max(res["records"], 1)
        if res["records"] < records:
            print(f"  ! plain reader read {res['records']:,} of {records:,} records")
        print(f"  plain reader: {res['records']:,} records in {res['seconds']:.1f} s = {rate:,.0f} records/s; "
              f"broker {broker:.1f} CPU s per million records served")
        print(f"  its requests to the broker (librdkafka statistics): {json.dumps(res['requests'])}")
        self.plain = {"rate": rate, "broker_per_m": broker, "records": res["records"]}

    def direct(self):
        """The floor: the same rows straight into the real tables (views firing), no Kafka."""
        print(f"\n== 2. Floor: the same {self.rows:,} rows inserted directly into ClickHouse "
              f"(database {DIRECT_DB}, same migrations, RowBinary over HTTP, one INSERT per table, "
              "materialized views firing; the services are idle)")
        self.run(*self.cli, "--database", DIRECT_DB, "migrate")
        files = {}
        for t in TABLES.values():
            files[t] = self.dir / "logs" / f"direct-{t}.rowbinary"
            files[t].write_bytes(self.http(f"SELECT * FROM {t} FORMAT RowBinary".encode(), timeout=300))
        size = sum(f.stat().st_size for f in files.values())
        # The services idle meanwhile: the broker's CPU in this phase is what their idle
        # polling (consumers and dimension followers) costs it.
        sampler = Sampler(self.base_pids())
        t0, walls = time.monotonic(), {}
        for t, f in files.items():
            t1 = time.monotonic()
            self.http(f.read_bytes(), DIRECT_DB, f"INSERT INTO {t} FORMAT RowBinary", timeout=300)
            walls[t] = time.monotonic() - t1
        wall = time.monotonic() - t0
        sampler.sample()
        t_inserted = sampler.history[-1][0]
        if not self.check(self.expected_rows, database=DIRECT_DB):
            print("  ! the direct database does not hold the same rows")
        print(f"  {self.rows:,} rows ({size / MIB:.0f} MiB RowBinary) in {wall:.2f} s = "
              f"{self.rows / wall:,.0f} rows/s; per table: "
              + ", ".join(f"{t} {w:.2f} s" for t, w in walls.items()))
        time.sleep(max(0.0, 5 - wall))  # at least 5 s for the idle broker's figure
        sampler.sample()
        cpus = sampler.table("direct insert (the broker: serving the five idle services)", t_inserted,
                             events=self.rows)
        idle = sampler.cpu_between("tansu (kafka)", t0, time.monotonic()) / (time.monotonic() - sampler.t0)
        print(f"  the broker, serving nothing but the five idle services' polls: {100 * idle:.0f} % of a core")
        self.direct_figs = {"wall": wall, "cpu": cpus["chdb-http (python)"]}

    def latency(self):
        rate = self.args.rate
        n = rate * LIVE_SECONDS
        print(f"\n== 3. Latency: {n} events live at {rate}/s (server_time = wall clock at produce), "
              "services already running")
        since_ms = int(time.time() * 1000) - 1000
        where = f"toUnixTimestamp64Milli(server_time) >= {since_ms}"
        sampler = Sampler({**self.base_pids(), **{f"wxpulse-{s}": self.services[s].pid for s in SERVICES}})
        # The world (accounts and fans are the same for every seed) is already published:
        # republishing its dimension records while the services follow them stalled Tansu
        # on sqlite in every run (no produce answered; --live-dimensions to reproduce).
        dims = [] if self.args.live_dimensions else ["--no-dimensions"]
        wall, line, truth = self.generate(sampler, n, self.dir / "logs" / "truth-live.json",
                                          "--live", "--rate", str(rate), *dims, timeout=LIVE_SECONDS * 4 + 60)
        produced = truth["records"] + truth["conversions"]["records"]
        print(f"  produce: {produced} records in {wall:.1f} s = {produced / wall:,.0f}/s "
              f"(asked {rate}/s); generator says: {line}")
        t_end = time.monotonic()
        broken_before = self.broken
        done, _, _ = self.wait_rows(sampler, self.expected(truth), where)
        if self.broken and not broken_before:
            self.broken = broken_before  # the throughput phase's verdict stands on its own
            self.live_error = "the live rows are not exactly the generated events (see ! lines)"
        print(f"  last row queryable {max(done.values()) - t_end:.1f} s after the generator exited")
        union = " UNION ALL ".join(
            f"SELECT toUnixTimestamp64Milli(ingested_at) - toUnixTimestamp64Milli(server_time) AS d, "
            f"toUnixTimestamp64Milli(ingested_at) AS i, toUnixTimestamp64Milli(server_time) AS s "
            f"FROM {t} WHERE {where}" for t in TABLES.values())
        rows, q, mx, span, s_span = self.sql(
            f"SELECT count(), quantilesExact(0.5, 0.99)(d), max(d), (max(i) - min(i)) / 1000, "
            f"(max(s) - min(s)) / 1000 FROM ({union}) FORMAT TSV").split("\t")
        self.paced = float(s_span) >= LIVE_SECONDS / 2  # server_time must spread over the run
        if not self.paced:
            print(f"  ! server_time spans only {float(s_span):.1f} s, not ~{LIVE_SECONDS} s: the generator "
                  "did not pace; the latency below is not meaningful")
        p50, p99 = json.loads(q)
        print(f"  event -> queryable latency over {int(rows):,} rows: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
              f"max {float(mx):.0f} ms")
        print(f"  ingest rate: {int(rows) / max(float(span), 0.001):,.0f} rows/s between first and last insert")
        print("  (ingested_at = now64(3) on the ClickHouse server at insert; rows are queryable when "
              "the insert returns, so this is produce -> Kafka -> service -> insert)")
        sampler.table("live phase (until the last row)", max(done.values()), events=int(rows))
        self.p50, self.p99, self.live_eps = p50, p99, produced / wall
        for k, v in sampler.hwm.items():
            self.rss[k] = max(self.rss.get(k, 0), v)

    def summary(self):
        rows = self.rows
        print(f"\n== Cost per event, throughput phase ({rows:,} events; CPU s are robust to the shared "
              "machine's load, wall-clock figures are not)")
        print(f"  {'process':<24}{'CPU s/M events':>15}{'peak RSS MiB':>14}")
        per_m = {k: v * 1e6 / rows for k, v in self.cpu.items()}
        # the generator's figure is per event it produced (the same events, before the phase)
        rows_out = list(per_m.items()) + [("wxpulse-generate (producer)",
                                           self.gen_cpu["wxpulse-generate"] * 1e6 / rows)]
        rss = self.rss | {"wxpulse-generate (producer)": self.gen_rss.get("wxpulse-generate", 0)}
        for k, v in rows_out:
            print(f"  {k:<24}{v:>15.1f}{rss.get(k, 0) / MIB:>14.0f}")
        svc_us = sum(self.cpu[f"wxpulse-{s}"] for s in SERVICES) * 1e6 / rows
        print("\n== Targets")
        print(f"  every event exactly once in ClickHouse (rows = distinct ids = generated)   "
              f"{'FAIL: see ! lines' if self.broken else 'PASS'}")
        print(f"  services' CPU per event   {svc_us:>8.2f} us (the five together, librdkafka fetch and "
              f"insert included)   target <= {TARGET_SERVICE_US} us   {verdict(svc_us <= TARGET_SERVICE_US)}")
        print(f"    of which consuming      {self.svc_steady_us:>8.2f} us (from each service's first rows; "
              "the rest is startup: dimension loads at every start)")
        print(f"  sustained throughput  {self.eps:>10,.0f} events/s (wall clock)  target >= {TARGET_EPS:,}   "
              f"{verdict(self.eps >= TARGET_EPS)}")
        if self.direct_figs:
            d = self.direct_figs
            e2e_cpu = sum(self.cpu.values())
            ch_cpu = self.cpu["chdb-http (python)"]
            print(f"  e2e / direct (wall)   {self.e2e_wall / d['wall']:>10.1f}x  ({self.e2e_wall:.1f} s / "
                  f"{d['wall']:.2f} s, wall clock)   target <= {TARGET_E2E_OVER_DIRECT:.0f}   "
                  f"{verdict(self.e2e_wall / d['wall'] <= TARGET_E2E_OVER_DIRECT)}")
            print(f"  e2e / direct (CPU)    {e2e_cpu / max(d['cpu'], 0.01):>10.1f}x  (services + broker + ClickHouse "
                  f"{e2e_cpu:.1f} CPU s / ClickHouse {d['cpu']:.1f} CPU s); ClickHouse alone "
                  f"{ch_cpu / max(d['cpu'], 0.01):.1f}x")
        if self.plain:
            p = self.plain
            broker = per_m["tansu (kafka)"]
            print(f"  rate vs plain reader  {self.eps / p['rate']:>10.2f}x  (wxpulse {self.eps:,.0f}/s to ClickHouse, "
                  f"plain {p['rate']:,.0f}/s; wall clock)   target >= {TARGET_RATE_VS_PLAIN}   "
                  f"{verdict(self.eps / p['rate'] >= TARGET_RATE_VS_PLAIN)}")
            print(f"  broker CPU vs plain   {broker / p['broker_per_m']:>10.2f}x  (serving wxpulse {broker:.1f} "
                  f"CPU s/M, the plain reader {p['broker_per_m']:.1f})   target <= {TARGET_BROKER_VS_PLAIN}   "
                  f"{verdict(broker / p['broker_per_m'] <= TARGET_BROKER_VS_PLAIN)}")
            steady = self.broker_steady * 1e6 / rows
            print(f"    of which after the first row {steady / p['broker_per_m']:>6.2f}x  ({steady:.1f} CPU s/M; "
                  "the rest is the services' start: group joins and five dimension loads)")
        if self.p99 is not None:
            print(f"  p50 / p99 latency     {self.p50:>6.0f} / {self.p99:.0f} ms at {self.live_eps:,.0f} ev/s "
                  f"(wall clock)   target p99 <= {TARGET_P99_MS} ms at {self.args.rate:,}/s   "
                  f"{verdict(self.p99 <= TARGET_P99_MS) if self.paced else 'INVALID (not paced)'}"
                  + (f"; {self.live_error}" if self.live_error else ""))
        else:
            print(f"  p50 / p99 latency     BROKEN at {self.args.rate:,}/s: {self.live_error}")
        for s in SERVICES:
            rss_s = self.rss[f"wxpulse-{s}"] / MIB
            print(f"  peak RSS {s:<13}{rss_s:>10.0f} MiB        target <= {TARGET_RSS_MIB} MiB    "
                  f"{verdict(rss_s <= TARGET_RSS_MIB)}")

    def teardown(self, keep):
        if keep:
            pids = " ".join(str(p.pid) for p in self.services.values())
            print(f"\nkept running: services pids {pids}; stack {self.dir}; metrics "
                  + " ".join(f"http://{m}/metrics" for m in self.metrics.values()))
            print(f"  stop with: kill {pids}; "
                  f"WXPULSE_STACK_DIR={self.dir} {STACK} down --purge")
            return
        for p in self.services.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.services.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # --purge deletes kafka/ clickhouse/ logs/ (ours too) pids/, then the empty dir
        subprocess.run([str(STACK), "down", "--purge"], env=self.env, capture_output=True, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events for the throughput phase")
    ap.add_argument("--rate", type=int, default=20_000, help="events/s for the latency phase")
    ap.add_argument("--storage", choices=["sqlite", "memory", "postgres"], default="sqlite",
                    help="Tansu storage (memory: faster, but loses records, see above)")
    ap.add_argument("--live-dimensions", action="store_true",
                    help="republish the world's dimension records before the live events "
                         "(stalls Tansu on sqlite: every run so far)")
    ap.add_argument("--no-mirror", action="store_true",
                    help="start the services without the fan-profile mirror's copy (every profile from the topic)")
    ap.add_argument("--keep", action="store_true", help="leave the stack and services running")
    ap.add_argument("--perf", choices=SERVICES, help="profile this service with `perf record` while it consumes")
    args = ap.parse_args()
    print("$ " + shlex.join([sys.executable] + sys.argv))
    missing = [b for b in ["wxpulse"] + [f"wxpulse-{s}" for s in SERVICES] if not (BIN / b).exists()]
    if missing:
        sys.exit(f"missing {', '.join(missing)} in {BIN}: run cargo build --release --workspace --bins")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below
    bench, ok, interrupted = Bench(args), False, False
    try:
        bench.setup()
        bench.throughput()
        try:
            bench.direct()
        except RuntimeError as e:
            print(f"\n  ! direct insert broke: {e}")
        try:
            bench.latency()
        except RuntimeError as e:  # a stalled broker: say so, keep the other figures
            bench.live_error = str(e).splitlines()[-1].strip()
            print(f"\n  ! latency phase broke: {e}")
            log = bench.dir / "logs" / "kafka.log"
            if log.exists():
                print("  broker log, last lines:\n    "
                      + "\n    ".join(log.read_text(errors="replace").splitlines()[-5:]))
        bench.summary()
        ok = not bench.broken
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", file=sys.stderr)
    except Exception as e:
        print(f"\nbenchmark broke: {e}", file=sys.stderr)
        print_logs(bench.dir / "logs")
    finally:
        bench.teardown(keep=args.keep and not interrupted)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
