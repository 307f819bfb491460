#!/usr/bin/env python3
"""Exactness of the local broker under kill -9: a private stack (bench_e2e.py's), N generated
events produced first, then the five release services consume them while the broker is
SIGKILLed (its process group, as tests' Stack::kill_component does) at given shares of the
rows in ClickHouse and started again on the same storage 2 s later. Passes when every
event is in ClickHouse exactly once (rows = distinct ids = generated) and the counts never
stopped moving for 60 s.

    deploy/local/.venv/bin/python deploy/local/broker_kill_check.py \\
        [--storage sqlite|postgres] [--events 200000] [--kill-at 0.25,0.6]

Exits 0 when exact, 1 otherwise. The services are the release binaries (target/release).
"""
import argparse
import os
import signal
import subprocess
import sys
import time

from bench_e2e import SERVICES, STACK, Bench
from bench_e2e_helpers import Sampler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--kill-at", default="0.25,0.6", help="shares of the rows at which to kill")
    args = ap.parse_args()
    shares = [float(x) for x in args.kill_at.split(",")]
    b = Bench(argparse.Namespace(storage=args.storage, events=args.events, rate=0,
                                 live_dimensions=False, no_mirror=True, keep=False))
    ok = False
    try:
        b.setup()
        sampler = Sampler(b.base_pids())
        _, _, truth = b.generate(sampler, args.events, b.dir / "logs" / "truth.json")
        expected = b.expected(truth)
        total = sum(expected.values())
        t0 = time.monotonic()
        b.start_services()
        for share in shares:
            while sum(b.counts().values()) < share * total:
                if any(p.poll() is not None for p in b.services.values()):
                    raise RuntimeError("a service exited")
                if time.monotonic() - t0 > 900:
                    raise RuntimeError("no progress in 900 s")
                time.sleep(0.2)
            pid = b.stack_pid("kafka")
            at = sum(b.counts().values())
            os.killpg(pid, signal.SIGKILL)
            time.sleep(2)
            t_kill = time.monotonic()
            subprocess.run([str(STACK), "start", "kafka"], env=b.env, check=True, capture_output=True)
            print(f"  kill -9 of the broker at {at:,} of {total:,} rows ({time.monotonic() - t0:.1f} s); "
                  f"up again {time.monotonic() - t_kill + 2:.1f} s later")
        sampler = Sampler(b.base_pids() | {f"wxpulse-{s}": b.services[s].pid for s in SERVICES})
        done, _, got = b.wait_rows(sampler, expected)
        print(f"  {sum(got.values()):,} rows of {total:,}, the last {max(done.values()) - t0:.1f} s after "
              f"the services started; exactly once: {'no' if b.broken else 'yes'}")
        ok = not b.broken
    except Exception as e:  # noqa: BLE001 - a check: report and fail
        print(f"broke: {e}", file=sys.stderr)
    finally:
        b.teardown(keep=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
