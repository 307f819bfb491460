#!/usr/bin/env python3
"""Soak of the five services on the local stack (Tansu + chdb-http), stdlib only (issue 16,
item 5): memory over a long run, and the state maps against their configured bounds.

    deploy/local/bench_soak.sh [--events 10000000] [--chunk 1000000] [--rate 5000]
                               [--brands 2] [--accounts-per-brand 2] [--fans-per-account 250000]
                               [--every 60] [--max-minutes 0] [--stop-at HH:MM] [--keep]

On a private stack (bench_e2e.py's Bench: free ports, a temp dir, migrations, topics of 4
partitions): publishes the generator's world (--brands x --accounts-per-brand x
--fans-per-account fans, with their profiles), copies the fan profiles into ClickHouse once
(`wxpulse dims mirror --once`), starts the five release services, then produces --events
live (`wxpulse-generate --live --rate R --no-dimensions`, server_time = wall clock) in chunks
of --chunk events, each chunk its own seed (new event ids, the same fans). Every --every s it
prints, per service: RSS (/proc VmRSS) and, from its /metrics, the fan profiles held, the
fan state (open = wxpulse_segment_fans_tracked - wxpulse_segment_quiet_fans, quiet, dormant
markers), the dedup window's ids and the horizon's Bloom filter bytes, and (chat-messages)
the reply waits; with the broker's and ClickHouse's RSS and the rows in ClickHouse.
At the end: every event exactly once (rows = distinct event ids = generated, as bench_e2e),
and PASS/MISS for RSS <= 200 MiB per service, RSS flat (the peak of the last third of the
samples at most 5 % above the first sample of that third), and each map within its bound
(config/default.toml, the services run on the defaults; per-partition bounds times the
partitions the service owns). --max-minutes (from service start) or --stop-at (UTC) stops
starting chunks (the events then are what was produced, and said so).
A benchmark, not a test: exits 0 whether targets are met or not, 1 if something broke.
"""
import argparse
import shlex
import signal
import sys
import time
import tomllib
import urllib.request

from bench_e2e import BIN, REPO, SERVICES, Bench, print_logs, verdict
from bench_e2e_helpers import MIB, Sampler, proc_stat

TARGET_RSS_MIB, FLAT_GROWTH = 200, 0.05
# gauge -> short name; summed over a service's series (label dimension picks fan profiles)
GAUGES = {"wxpulse_segment_fans_tracked": "held", "wxpulse_segment_quiet_fans": "quiet",
          "wxpulse_segment_dormant_fans": "dormant", "wxpulse_dedup_ids_tracked": "ids",
          "wxpulse_dedup_horizon_bytes": "horizon", "wxpulse_chat_reply_waits": "waits",
          "wxpulse_source_assigned_partitions": "parts"}
PROFILES = 'wxpulse_enrich_dimension_records{dimension="fan_profile"'


def scrape(addr):
    """The soak's gauges of one service's /metrics, or {} if it did not answer."""
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    got = dict.fromkeys([*GAUGES.values(), "profiles"], 0.0)
    for ln in text.splitlines():
        if ln.startswith("#"):
            continue
        name = ln.split("{")[0].split(" ")[0]
        if name in GAUGES:
            got[GAUGES[name]] += float(ln.rsplit(" ", 1)[1])
        elif ln.startswith(PROFILES):
            got["profiles"] += float(ln.rsplit(" ", 1)[1])
    got["open"] = got["held"] - got["quiet"]
    return got


class SoakSampler(Sampler):
    """Bench's sampler (every 0.5 s, in its generate and wait loops) that also prints the
    per-service line every `every` s and keeps it for the verdicts."""

    def __init__(self, soak, pids, every):
        self.soak, self.every, self.next = soak, every, time.monotonic()
        super().__init__(pids)

    def sample(self):
        super().sample()
        if time.monotonic() >= self.next:
            self.next += self.every
            self.soak.minute()


class Soak(Bench):
    def __init__(self, args):
        args.storage = "sqlite"
        super().__init__(args)
        self.world = ["--brands", str(args.brands), "--accounts-per-brand", str(args.accounts_per_brand),
                      "--fans-per-account", str(args.fans_per_account)]
        self.samples = []  # (minutes since services started, {service: RSS bytes and gauges})
        self.generated, self.expected_total, self.checked = 0, {}, False
        cfg = tomllib.loads((REPO / "config" / "default.toml").read_text())
        self.cfg = cfg

    def bounds(self, s, parts):
        """{gauge: bound} for one service owning `parts` partitions (the services' defaults)."""
        c = self.cfg
        b = {"held": c["segment"]["max_fans"], "dormant": c["segment"]["max_dormant_fans"],
             "ids": c["dedup"]["max_ids"] * parts, "horizon": c["dedup"]["horizon_max_bytes"] * parts}
        if s == "chat-messages":
            b["waits"] = c["chat"]["max_waits"]
        return b

    def minute(self):
        t = (time.monotonic() - self.t_services) / 60
        rss = {k: proc_stat(p)[1] if proc_stat(p) else 0 for k, p in self.base_pids().items()}
        rows = sum(self.counts().values())
        print(f"\n  [{time.strftime('%H:%M:%S')}] {t:5.1f} min: {rows:,} rows in ClickHouse, "
              f"{self.generated:,} generated by finished chunks; RSS broker {rss['tansu (kafka)'] / MIB:.0f} MiB, "
              f"ClickHouse {rss['chdb-http (python)'] / MIB:.0f} MiB, sqlite "
              f"{sum(f.stat().st_size for f in (self.dir / 'kafka').rglob('*') if f.is_file()) / 2**30:.1f} GiB")
        print(f"    {'service':<14}{'RSS MiB':>8}{'profiles':>10}{'open':>10}{'quiet':>9}{'dormant':>9}"
              f"{'dedup ids':>11}{'horizon MiB':>12}{'waits':>9}")
        got = {}
        for s in SERVICES:
            st = proc_stat(self.services[s].pid)
            g = scrape(self.metrics[s]) | {"rss": st[1] if st else 0}
            got[s] = g
            if len(g) == 1:
                print(f"    {s:<14}{g['rss'] / MIB:>8.0f}   ! /metrics did not answer")
                continue
            waits = f"{g['waits']:>9,.0f}" if s == "chat-messages" else f"{'-':>9}"
            print(f"    {s:<14}{g['rss'] / MIB:>8.0f}{g['profiles']:>10,.0f}{g['open']:>10,.0f}{g['quiet']:>9,.0f}"
                  f"{g['dormant']:>9,.0f}{g['ids']:>11,.0f}{g['horizon'] / MIB:>12.1f}{waits}")
        sys.stdout.flush()
        self.samples.append((t, got))

    def publish_world(self):
        print(f"\n== World: {shlex.join(self.world)} ({self.args.brands * self.args.accounts_per_brand * self.args.fans_per_account:,} fans), "
              "dimension records only")
        t0 = time.monotonic()
        p = self.run(str(BIN / "wxpulse-generate"), "--brokers", self.brokers, "--dimensions-only", *self.world)
        line = next((ln for ln in p.stderr.splitlines() if "dimension records" in ln), "")
        print(f"  {line.split('[generate] ', 1)[-1].strip()} in {time.monotonic() - t0:.0f} s")

    def mirror(self):
        """Bench's copy of the fan profiles, tried twice: `dims mirror --once` gives up after
        60 s without a record, which Tansu on sqlite with a million profiles can take to answer
        a fetch on a loaded machine. Without the copy the services read the topic (slower start)."""
        for attempt in (1, 2):
            try:
                return super().mirror()
            except RuntimeError as e:
                print(f"  ! mirror, attempt {attempt}: {e}")
        print("  ! no mirror copy: the services read every fan profile from the topic at start")

    def soak(self):
        a = self.args
        self.publish_world()
        self.mirror()
        self.t_services = time.monotonic()
        self.start_services()
        sampler = SoakSampler(self, {f"wxpulse-{s}": self.services[s].pid for s in SERVICES} | self.base_pids(),
                              a.every)
        print(f"\n== Soak: {a.events:,} events live at {a.rate:,}/s in chunks of {a.chunk:,} "
              f"(one wxpulse-generate --live each, its own seed)")
        chunks = -(-a.events // a.chunk)
        for i in range(chunks):
            late = a.stop_at and time.strftime("%H:%M", time.gmtime()) >= a.stop_at
            if late or (a.max_minutes and time.monotonic() - self.t_services > a.max_minutes * 60):
                print(f"\n  ! {'--stop-at ' + a.stop_at if late else f'--max-minutes {a.max_minutes}'} "
                      f"reached: stopping after {i} of {chunks} chunks")
                break
            n = min(a.chunk, a.events - i * a.chunk)
            wall, line, truth = self.generate(sampler, n, self.dir / "logs" / f"truth-{i}.json", "--live", "--rate",
                                              str(a.rate), "--no-dimensions", *self.world,
                                              timeout=n // a.rate * 4 + 120)
            for t, k in self.expected(truth).items():
                self.expected_total[t] = self.expected_total.get(t, 0) + k
            produced = truth["records"] + truth["conversions"]["records"]
            self.generated = sum(self.expected_total.values())
            print(f"  chunk {i + 1}/{chunks}: {produced:,} records in {wall:.0f} s = {produced / wall:,.0f}/s "
                  f"(asked {a.rate:,}/s)")
            time.sleep(1)  # the next chunk's seed is the wall clock in seconds
        t_end = time.monotonic()
        done, _, _ = self.wait_rows(sampler, self.expected_total)
        self.checked = True
        print(f"\n  last row in ClickHouse {max(done.values()) - t_end:.0f} s after the last chunk was produced")
        self.minute()

    def verdicts(self):
        print(f"\n== Targets ({self.generated:,} events generated, {len(self.samples)} samples, "
              f"{self.samples[-1][0]:.0f} min from service start)")
        print(f"  every event exactly once in ClickHouse (rows = distinct ids = generated)   "
              f"{'FAIL: see ! lines' if self.broken else 'PASS' if self.checked else 'NOT CHECKED (the run broke)'}")
        third = self.samples[len(self.samples) * 2 // 3:]
        print("  RSS flat = the peak of the last third of the samples (from "
              f"{third[0][0]:.0f} min) at most {100 * FLAT_GROWTH:.0f} % above its first sample")
        for s in SERVICES:
            peak = max(g[s]["rss"] for _, g in self.samples)
            start, end_peak = third[0][1][s]["rss"], max(g[s]["rss"] for _, g in third)
            growth = end_peak / start - 1 if start else float("inf")
            print(f"  {s:<14} peak RSS {peak / MIB:5.0f} MiB (<= {TARGET_RSS_MIB})  {verdict(peak <= TARGET_RSS_MIB * MIB)}"
                  f"   last third {start / MIB:.0f} -> {end_peak / MIB:.0f} MiB ({100 * growth:+.1f} %)  "
                  f"{verdict(growth <= FLAT_GROWTH)}")
            parts = max(g[s].get("parts", 0) for _, g in self.samples) or 4
            for k, bound in self.bounds(s, int(parts)).items():
                top = max(g[s].get(k, 0) for _, g in self.samples)
                unit = (lambda v: f"{v / MIB:,.1f} MiB") if k == "horizon" else (lambda v: f"{v:,.0f}")
                print(f"    {k:<8} max {unit(top):>14} of bound {unit(bound):>14}  {verdict(top <= bound)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=1_000_000, help="events per generator run")
    ap.add_argument("--rate", type=int, default=5000, help="events/s of each live chunk")
    ap.add_argument("--brands", type=int, default=2)
    ap.add_argument("--accounts-per-brand", type=int, default=2)
    ap.add_argument("--fans-per-account", type=int, default=250_000)
    ap.add_argument("--every", type=float, default=60, help="seconds between the printed samples")
    ap.add_argument("--max-minutes", type=float, default=0, help="start no chunk after this long (0: all)")
    ap.add_argument("--stop-at", default="", help="HH:MM UTC: start no chunk from then on (a deadline)")
    ap.add_argument("--keep", action="store_true", help="leave the stack and services running")
    args = ap.parse_args()
    print("$ " + shlex.join([sys.executable] + sys.argv))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soak, ok, interrupted = Soak(args), False, False
    try:
        soak.setup()
        soak.soak()
        soak.verdicts()
        ok = not soak.broken
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", file=sys.stderr)
    except Exception as e:
        print(f"\nsoak broke: {e}", file=sys.stderr)
        if soak.samples:
            soak.verdicts()
        print_logs(soak.dir / "logs")
    finally:
        soak.teardown(keep=args.keep and not interrupted)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
