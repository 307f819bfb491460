"""Cost of attribution at read time: the conversion views over synthetic data on the real
ClickHouse engine (chdb), printed as figures. `make bench-attribution`.

    deploy/local/.venv/bin/python deploy/local/bench_attribution.py [--fans N] [--touches N] [--orders N]

Builds a private database with every migration applied, fills `fan_touches` and `orders`
directly (the shapes of a busy month: touches spread over the fans, orders on a subset with
5% refunds), then times each conversion view read for the month, best of 3.
"""
import argparse
import glob
import os
import tempfile
import time

from chdb import session

HERE = os.path.dirname(os.path.abspath(__file__))
MIGRATIONS = os.path.join(HERE, "..", "..", "schemas", "clickhouse", "migrations")


def statements(path):
    sql = "\n".join(line for line in open(path).read().splitlines() if not line.strip().startswith("--"))
    for st in sql.split(";\n"):
        st = st.strip().rstrip(";").strip()
        if st:
            yield st.replace(" {ON_CLUSTER}", "").replace("{ON_CLUSTER}", "").replace("{ALL}", "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fans", type=int, default=500_000)
    ap.add_argument("--touches", type=int, default=2_000_000)
    ap.add_argument("--orders", type=int, default=100_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = session.Session(tmp)
        s.query("CREATE DATABASE bench")
        s.query("USE bench")
        for path in sorted(glob.glob(os.path.join(MIGRATIONS, "*.sql"))):
            for st in statements(path):
                s.query(st)
        start = "toDateTime64('2026-10-01 00:00:00', 3, 'Asia/Shanghai')"
        t = time.perf_counter()
        s.query(f"""
            INSERT INTO fan_touches
            SELECT 'wxa', cityHash64(number % {a.fans}), {start} + toIntervalMillisecond(cityHash64(number, 1) % (30 * 86400000)),
                   generateUUIDv4(number), ['associate_chat', 'article', 'qr_scan', 'menu_ecommerce'][1 + number % 4],
                   if(number % 4 IN (0, 2), concat('u', toString(number % 500)), ''),
                   if(number % 4 IN (0, 2), concat('s', toString(number % 50)), ''), 'east',
                   if(number % 4 = 1, toInt64(number % 120), 0), '', '', if(number % 4 = 2, concat('scene', toString(number % 300)), ''),
                   if(number % 4 = 2, 'store', '')
            FROM numbers({a.touches})""")
        s.query(f"""
            INSERT INTO orders (event_id, app_id, fan_id, event_time, server_time, order_id, kind, amount_fen, currency,
                                channel, store_id, region, share_code, share_store_id, share_region, items, attribution_window_s)
            SELECT generateUUIDv4(number), 'wxa', cityHash64((number * 7) % {a.fans}),
                   {start} + toIntervalMillisecond(cityHash64(number, 2) % (30 * 86400000)), now64(3),
                   concat('o', toString(intDiv(number, 20) * 20 + if(number % 20 = 19, 0, number % 20))),
                   if(number % 20 = 19, 'refund', 'purchase'), 10000 + number % 200000, 'CNY',
                   'store_pos', concat('s', toString(number % 50)), 'east',
                   if(number % 10 = 0, concat('u', toString(number % 500)), ''), '', '', 1, 604800
            FROM numbers({a.orders})""")
        load = time.perf_counter() - t
        print(f"attribution at read time, chdb {s.query('SELECT version()', 'TSV').bytes().decode().strip()}, "
              f"{a.touches:,} touches over {a.fans:,} fans, {a.orders:,} order records (5% refunds); load {load:.1f} s")
        queries = {
            "order_purchases (each purchase once)":
                "SELECT count(), sum(amount_fen) FROM order_purchases",
            "order_purchase_credits (the touch join)":
                "SELECT count(), sum(length(credits)) FROM order_purchase_credits",
            "v_attribution_by_associate (month, 3 models)":
                "SELECT count(), sum(net_fen) FROM v_attribution_by_associate WHERE month = '2026-10-01'",
            "v_attribution_daily (month)":
                "SELECT count(), sum(net_fen) FROM v_attribution_daily WHERE day >= '2026-10-01'",
            "v_attribution_by_push, last touch":
                "SELECT count(), sum(net_fen) FROM v_attribution_by_push WHERE model = 'last_touch'",
            "v_orders_daily":
                "SELECT count(), sum(net_fen) FROM v_orders_daily",
            "v_social_funnel_monthly":
                "SELECT count(), sum(buyers) FROM v_social_funnel_monthly",
        }
        for name, sql in queries.items():
            best = None
            for _ in range(3):
                t = time.perf_counter()
                s.query(sql, "TSV")
                dt = time.perf_counter() - t
                best = dt if best is None else min(best, dt)
            print(f"  {name:<48} {best * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
