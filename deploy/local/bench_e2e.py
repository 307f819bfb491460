#!/usr/bin/env python3
"""End-to-end benchmark of wxpulse on the local stack (Tansu + chdb-http), stdlib only.

    deploy/local/bench_e2e.sh [--events 1000000] [--rate 20000] [--storage sqlite|memory] [--keep]

Starts a private stack on free ports in a temp dir, then:
  1. throughput: produces --events generated events, starts the four services and times
     them until ClickHouse holds every event (sustained consume -> ClickHouse events/s);
  2. latency: with the services running, `wxpulse-generate --live` produces rate x 30 s
     events stamped with their wall-clock server_time; event->queryable latency is
     ingested_at - server_time of each row (ingested_at = server-side insert time).
Prints CPU share and peak RSS of every process, and the targets with PASS/MISS.
"Done" is decided by ClickHouse counts, never Kafka lag (Tansu's memory engine reports wrong
high watermarks), and the rows are checked: each generated event exactly once.
Storage defaults to sqlite: with memory, records are lost and duplicated whenever a service
pauses consumption for backpressure (seen in every run; exact without pauses, and exact
on sqlite with pauses), so memory figures are only indicative.
A benchmark, not a test: exits 0 whether targets are met or not, 1 if something broke.
"""
import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

LOCAL = Path(__file__).resolve().parent
REPO = LOCAL.parent.parent
BIN = REPO / "target" / "release"
STACK = LOCAL / "stack.sh"
SERVICES = ["menu-clicks", "qr-scans", "chat-messages", "article-reads"]
TABLES = {"menu_click": "menu_clicks", "qr_scan": "qr_scans",      # truth key -> raw table
          "chat_message": "chat_messages", "article_read": "article_reads"}
TICK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
TARGET_EPS, TARGET_P99_MS, TARGET_RSS_MIB = 100_000, 2000, 200
LIVE_SECONDS = 30
STALL_S = 60  # give up when ClickHouse counts do not move for this long


def verdict(ok):
    return "PASS" if ok else "MISS"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    """(cpu seconds, VmRSS bytes, VmHWM bytes) of a live pid, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime (fields 14, 15)
    mem = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in status.splitlines()
           if ln.startswith(("VmRSS", "VmHWM"))}
    return cpu, mem.get("VmRSS", 0), mem.get("VmHWM", 0)


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

    def table(self, title, until=None):
        """CPU from the phase start to `until` (default now; a stall at the end is cut off)."""
        until = until or time.monotonic()
        cpu_at = [c for t, c in self.history if t <= until + 0.01][-1]
        wall = until - self.t0
        print(f"\n  {title}: {wall:.1f} s wall; CPU % is of one core (2 cores = 200 %)")
        print(f"  {'process':<22}{'CPU s':>9}{'CPU %':>8}{'peak RSS MiB':>14}{'VmHWM MiB':>11}")
        for name in self.cpu:
            cpu = cpu_at.get(name, self.cpu[name]) - self.cpu0.get(name, 0.0)
            print(f"  {name:<22}{cpu:>9.1f}{100 * cpu / wall:>8.0f}"
                  f"{self.rss[name] / MIB:>14.0f}{self.hwm[name] / MIB:>11.0f}")


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
        self.cli = [str(BIN / "wxpulse"), "--brokers", self.brokers, "--clickhouse", self.ch]

    # ---------------------------------------------------------------- helpers
    def sql(self, query):
        req = urllib.request.Request(f"{self.ch}/?database=wxpulse", data=query.encode())
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"ClickHouse: {e.read().decode().strip()}\n  query: {query[:300]}") from None

    def run(self, *cmd, env=None):
        p = subprocess.run(cmd, env=env or self.env, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p

    def counts(self, where="1", expr="count()"):
        q = ", ".join(f"(SELECT {expr} FROM {t} WHERE {where})" for t in TABLES.values())
        return dict(zip(TABLES.values(), map(int, self.sql(f"SELECT {q}").split()), strict=True))

    def check(self, expected, where="1"):
        """Rows must be exactly the generated events: each once, none missing."""
        rows, ids = self.counts(where), self.counts(where, "uniqExact(event_id)")
        bad = {t: f"{rows[t]} rows, {ids[t]} distinct event_ids, {n} generated"
               for t, n in expected.items() if not rows[t] == ids[t] == n}
        for t, msg in bad.items():
            print(f"  ! {t}: {msg}")
        return not bad

    def stack_pid(self, component):
        return int((self.dir / "pids" / f"{component}.pid").read_text())

    def generate(self, sampler, events, truth, *extra):
        """Runs `wxpulse-generate`, sampling meanwhile; returns (wall s, its stderr tail, truth)."""
        cmd = [str(BIN / "wxpulse-generate"), "--brokers", self.brokers, "--events", str(events), "--malformed-share", "0",
                          "--duplicate-share", "0", "--seed", str(int(time.time())),
                          "--truth", str(truth), *extra]
        err = open(self.dir / "logs" / "generate.log", "w+")
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=True)
        self.services["generate"] = p
        sampler.add("wxpulse-generate", p.pid)
        while True:  # wait4 (not Popen.wait) for the child's own CPU time and max RSS
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            sampler.sample()
            time.sleep(0.5)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        del self.services["generate"]
        sampler.finished("wxpulse-generate", rusage)
        err.seek(0)
        tail = [ln.strip() for ln in err.read().splitlines() if ln.strip()]
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({p.returncode}):\n" + "\n".join(tail[-20:]))
        return wall, tail[-1] if tail else "", json.loads(truth.read_text())

    def wait_rows(self, sampler, expected, where="1"):
        """Polls ClickHouse until every table holds its expected count, or counts stop moving
        for STALL_S. Returns ({table: time it completed or last grew}, time of the first row,
        final counts); times are time.monotonic()."""
        changed, first, last, now = {}, None, {}, time.monotonic()
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
        return {"tansu (kafka)": self.stack_pid("kafka"), "chdb-http (python)": self.stack_pid("clickhouse")}

    def throughput(self):
        n = self.args.events
        print(f"\n== 1. Throughput: {n} events produced first, then the four services consume them")
        sampler = Sampler(self.base_pids())
        wall, line, truth = self.generate(sampler, n, self.dir / "logs" / "truth-throughput.json")
        expected = {TABLES[k]: v for k, v in truth["events"].items()}
        print(f"  produce: {truth['records']} records, generate+produce {wall:.1f} s "
              f"({truth['records'] / wall:,.0f}/s); generator says: {line}")
        sampler.table("during generate")
        sampler = Sampler(self.base_pids())
        t0 = time.monotonic()
        self.start_services()
        for s in SERVICES:
            sampler.add(f"wxpulse-{s}", self.services[s].pid)
        done, first, got = self.wait_rows(sampler, expected)
        rows, wall = sum(got.values()), max(done.values()) - t0
        eps = rows / wall
        print(f"  consume -> ClickHouse: {rows:,} rows in {wall:.1f} s from service start = "
              f"{eps:,.0f} events/s  (first row visible after {first - t0:.1f} s; "
              f"{rows / max(wall - (first - t0), 0.5):,.0f} events/s from then)")
        for t, n_t in expected.items():
            print(f"    {t:<14}{got[t]:>10,} rows of {n_t:>9,}  done at {done[t] - t0:6.1f} s  "
                  f"{got[t] / (done[t] - t0):>10,.0f} events/s")
        sampler.table("consume phase (until the last row)", max(done.values()))
        self.eps, self.rss = eps, dict(sampler.hwm)

    def latency(self):
        rate = self.args.rate
        n = rate * LIVE_SECONDS
        print(f"\n== 2. Latency: {n} events live at {rate}/s (server_time = wall clock at produce), "
              "services already running")
        since_ms = int(time.time() * 1000) - 1000
        where = f"toUnixTimestamp64Milli(server_time) >= {since_ms}"
        sampler = Sampler({**self.base_pids(), **{f"wxpulse-{s}": self.services[s].pid for s in SERVICES}})
        wall, line, truth = self.generate(sampler, n, self.dir / "logs" / "truth-live.json",
                                          "--live", "--rate", str(rate))
        print(f"  produce: {truth['records']} records in {wall:.1f} s = {truth['records'] / wall:,.0f}/s "
              f"(asked {rate}/s); generator says: {line}")
        t_end = time.monotonic()
        done, _, _ = self.wait_rows(sampler, {TABLES[k]: v for k, v in truth["events"].items()}, where)
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
        print(f"  ingest rate: {int(rows) / float(span):,.0f} rows/s between first and last insert")
        print("  (ingested_at = now64(3) on the ClickHouse server at insert; rows are queryable when "
              "the insert returns, so this is produce -> Kafka -> service -> insert)")
        sampler.table("live phase (until the last row)", max(done.values()))
        self.p99, self.live_eps = p99, truth["records"] / wall
        for k, v in sampler.hwm.items():
            self.rss[k] = max(self.rss.get(k, 0), v)

    def summary(self):
        print("\n== Targets")
        print(f"  every event exactly once in ClickHouse (rows = distinct ids = generated)   "
              f"{'FAIL: see ! lines' if self.broken else 'PASS'}")
        print(f"  sustained throughput  {self.eps:>10,.0f} events/s   target >= {TARGET_EPS:,}   "
              f"{verdict(self.eps >= TARGET_EPS)}")
        print(f"  p99 latency           {self.p99:>10.0f} ms at {self.live_eps:,.0f} ev/s   "
              f"target <= {TARGET_P99_MS} ms at {self.args.rate:,}/s   "
              f"{verdict(self.p99 <= TARGET_P99_MS) if self.paced else 'INVALID (not paced)'}")
        for s in SERVICES:
            rss = self.rss[f"wxpulse-{s}"] / MIB
            print(f"  peak RSS {s:<13}{rss:>10.0f} MiB        target <= {TARGET_RSS_MIB} MiB    "
                  f"{verdict(rss <= TARGET_RSS_MIB)}")

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
    ap.add_argument("--storage", choices=["sqlite", "memory"], default="sqlite",
                    help="Tansu storage (memory: faster, but loses records, see above)")
    ap.add_argument("--keep", action="store_true", help="leave the stack and services running")
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
        bench.latency()
        bench.summary()
        ok = not bench.broken
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", file=sys.stderr)
    except Exception as e:
        print(f"\nbenchmark broke: {e}", file=sys.stderr)
        for log in sorted((bench.dir / "logs").glob("*.log")):
            lines = [ln for ln in log.read_text().splitlines() if "CONFWARN" not in ln]
            print(f"--- {log.name} (last lines)\n" + "\n".join(lines[-8:]),
                  file=sys.stderr)
    finally:
        bench.teardown(keep=args.keep and not interrupted)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
