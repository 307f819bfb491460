#!/usr/bin/env python3
"""A plain Kafka reader for bench_e2e.py: reads topics from the beginning with its own group
and discards every record, so the broker's cost of serving wxpulse can be compared with
the cost of serving a reader that does nothing (issue 16, item 2).

    bench_plain_reader.py --brokers HOST:PORT --expect N TOPIC...

librdkafka (confluent-kafka) with its defaults, except that it never commits. Stops at
--expect records, or after --idle seconds without one. Prints one JSON line: records,
seconds from the first to the last record and from start, and librdkafka's request counts
to the broker (statistics, brokers[].req), to set against the services' fetch pattern.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer


def main():
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
