"""Cost of attribution at read time: the conversion views over synthetic data on the real
ClickHouse engine (chdb), printed as figures. `make bench-attribution`.

    deploy/local/.venv/bin/python deploy/local/bench_attribution.py [--fans N] [--touches N] [--orders N]

Builds two private databases with the same data: `before`, with the migrations up to 0016
(the touch join of 0007 on every read), and `bench`, with every migration (0017: settled
purchases + the join for the open ones). Fills `fan_touches` and `orders` directly (the
shapes of a busy month: touches spread over the fans, orders on a subset with 5% refunds),
then times each conversion view read for the month, best of 3: before, and after 0017 with
nothing settled, with the month settled but its last 8 days (7 days of lateness + 1 day of
margin: what a daily `wxpulse conversions settle` leaves open), and with all of it settled.
Each time it checks that every view gives the same figures as before (rows compared after
rounding floats to 6 decimals), and fails if one does not.
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


# Every figure of every conversion view, compared between the databases.
FINGERPRINTED = ["order_credits", "order_purchases", "v_attribution_daily", "v_attribution_by_associate",
                 "v_attribution_by_push", "v_attribution_by_scene", "v_orders_daily", "v_social_funnel_monthly"]


def fingerprint(s, db, view):
    cols = s.query(f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{view}' "
                   "ORDER BY position", "TSV").bytes().decode().strip().split("\n")
    exprs = []
    for line in cols:
        name, ty = line.split("\t")
        numeric = ty.startswith(("Float", "Nullable(Float"))
        exprs.append(f"toString(round({name}, 6))" if numeric else f"toString({name})")
    q = f"SELECT count(), sum(cityHash64(arrayStringConcat([{', '.join(exprs)}], '|'))) FROM {db}.{view}"
    return s.query(q, "TSV").bytes().decode().strip()


def one(s, sql):
    return s.query(sql, "TSV").bytes().decode().strip()


SETTLE_COLUMNS = ("app_id, brand, order_id, fan_id, purchase_time, event_id, amount_fen, currency, channel, "
                  "order_store_id, order_region, share_code, share_store_id, share_region, items, "
                  "attribution_window_s, credit_no, model, touch, touch_time, touch_event_id, associate_userid, "
                  "store_id, region, msgid, article_id, campaign, scene, qr_channel, weight")


def settle(s, cutoff):
    """What `wxpulse conversions settle --until <cutoff>` does (services/cli/src/conversions.rs):
    each month from the last cutoff's (or the first purchase's) to the cutoff's is computed into
    order_credits_settling and swapped into order_credits_settled whole, then the cutoff is
    recorded."""
    c = f"toDateTime64('{cutoff}', 3, 'Asia/Shanghai')"
    first = one(s, "SELECT toStartOfMonth(if(w > toDateTime64(0, 3, 'Asia/Shanghai'), w, "
                   "ifNull((SELECT minOrNull(purchase_time) FROM order_purchases_open), now64(3)))) "
                   "FROM (SELECT max(settled_until) AS w FROM conversion_settles)")
    months = one(s, f"SELECT arrayJoin(arrayMap(i -> addMonths(toDate('{first}'), i), range(toUInt32(greatest(0, "
                    f"dateDiff('month', toDate('{first}'), toStartOfMonth({c} - toIntervalMillisecond(1))) + 1)))))").split()
    for m in months:
        part = m.replace("-", "")[:6]
        lo = one(s, f"SELECT toUnixTimestamp64Milli(toDateTime64(toDate('{m}'), 3, 'Asia/Shanghai'))")
        hi = one(s, f"SELECT least(toUnixTimestamp64Milli(toDateTime64(addMonths(toDate('{m}'), 1), 3, "
                    f"'Asia/Shanghai')), toUnixTimestamp64Milli({c}))")
        s.query(f"ALTER TABLE order_credits_settling DROP PARTITION {part}")
        s.query(f"INSERT INTO order_credits_settling ({SETTLE_COLUMNS}, settled_until) SELECT {SETTLE_COLUMNS}, {c} "
                f"FROM order_credits_to_settle(from_ms = {lo}, to_ms = {hi})")
        n = int(one(s, f"SELECT count() FROM order_credits_settling WHERE toYYYYMM(purchase_time) = {part}"))
        if n:
            s.query(f"ALTER TABLE order_credits_settled REPLACE PARTITION {part} FROM order_credits_settling")
        else:
            s.query(f"ALTER TABLE order_credits_settled DROP PARTITION {part}")
        s.query(f"ALTER TABLE order_credits_settling DROP PARTITION {part}")
    first_month = months[0] if months else one(s, f"SELECT toStartOfMonth({c})")
    settled = one(s, "SELECT count() FROM order_credits_settled WHERE credit_no = 1")
    s.query(f"INSERT INTO conversion_settles (settled_until, from_month, purchases) VALUES ({c}, '{first_month}', {settled})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fans", type=int, default=500_000)
    ap.add_argument("--touches", type=int, default=2_000_000)
    ap.add_argument("--orders", type=int, default=100_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = session.Session(tmp)
        for db in ("before", "bench"):
            s.query(f"CREATE DATABASE {db}")
            s.query(f"USE {db}")
            for path in sorted(glob.glob(os.path.join(MIGRATIONS, "*.sql"))):
                if db == "before" and int(os.path.basename(path)[:4]) > 16:
                    continue
                for st in statements(path):
                    s.query(st)
        s.query("USE before")
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
        s.query("INSERT INTO bench.fan_touches SELECT * FROM before.fan_touches")
        s.query("INSERT INTO bench.orders SELECT * FROM before.orders")
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
        expected = {v: fingerprint(s, "before", v) for v in FINGERPRINTED}

        def timed(db):
            s.query(f"USE {db}")
            out = {}
            for name, sql in queries.items():
                best = None
                for _ in range(3):
                    t = time.perf_counter()
                    s.query(sql, "TSV")
                    dt = time.perf_counter() - t
                    best = dt if best is None else min(best, dt)
                out[name] = best
            return out

        def same_figures(label):
            wrong = [v for v in FINGERPRINTED if fingerprint(s, "bench", v) != expected[v]]
            if wrong:
                raise SystemExit(f"{label}: figures differ from before 0017 in {', '.join(wrong)}")

        columns = [("before 0017", timed("before"))]
        same_figures("nothing settled")
        columns.append(("0017, all open", timed("bench")))
        s.query("USE bench")
        t = time.perf_counter()
        settle(s, "2026-10-23 00:00:00")
        first_settle = time.perf_counter() - t
        same_figures("settled to 10-23")
        columns.append(("last 8 days open", timed("bench")))
        s.query("USE bench")
        t = time.perf_counter()
        settle(s, "2026-11-01 00:00:00")
        second_settle = time.perf_counter() - t
        settle(s, "2026-11-01 00:00:00")
        same_figures("all settled (twice)")
        columns.append(("all settled", timed("bench")))
        print(f"  {'read, best of 3 (ms)':<46}" + "".join(f"{label:>18}" for label, _ in columns))
        for name in queries:
            print(f"  {name:<46}" + "".join(f"{c[name] * 1000:18.0f}" for _, c in columns))
        print(f"  settle: to 10-23 {first_settle:.1f} s, then to 11-01 {second_settle:.1f} s; "
              f"every view's figures identical to before 0017 in each column")


if __name__ == "__main__":
    main()
