#!/usr/bin/env python3
"""Checks the Grafana dashboards' ClickHouse queries, and runs them on a ClickHouse.

    check_dashboard_sql.py [DASHBOARD.json ...]
        static checks only: every dashboard parses, uids and titles are unique, panel ids
        are unique per dashboard, every ClickHouse panel has a title, a description and
        SQL whose variables are defined and whose macros the plugin knows
    check_dashboard_sql.py --clickhouse http://127.0.0.1:8123 [--database wxpulse] ...
        and then every ClickHouse query (variables first, in order, then every panel),
        with the variables and macros substituted as Grafana and the plugin would, through
        the ClickHouse HTTP interface: each must run, and each field a panel names (x
        field, overrides by name) must be a column of its result
    --require-rows      also fail when a panel's query returns no row (for fixture data)
    --set NAME=VALUE    a variable's value (default: a query variable's first result, a
                        custom variable's current value)

Default: every deploy/grafana/dashboards/*.json. Without --clickhouse the queries are not
run, which is said in the output (deploy/ops/check-deploy.sh passes its
WXPULSE_CHECK_CLICKHOUSE_URL; WXPULSE_CHECK_CLICKHOUSE_USER/_PASSWORD are the default
--user/--password). The substitution follows grafana-clickhouse-datasource 4.3 (deploy/compose): Grafana
interpolates `$var`, `${var}`, `${var:format}` and `[[var]]` (a single value is inserted as
is; `sqlstring` quotes it and doubles quotes), then the plugin expands its macros
`$__timeFilter(col)`, `$__dateFilter(col)`, `$__fromTime`, ... against the time range
(`--from`/`--to`, default the last 30 days). Only the standard library is used.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import glob
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard_metrics import CLICKHOUSE, DASHBOARDS, Dashboard  # noqa: E402

# Grafana's own variables: values for the check.
GLOBALS = {"__interval": "1m", "__interval_ms": "60000", "__range": "30d", "__range_s": "2592000",
           "__range_ms": "2592000000", "__rate_interval": "5m", "__dashboard": "check",
           "__org": "1", "__user": "check", "__timezone": "Asia/Shanghai"}
VARIABLE = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\]\]"
    r"|\$([A-Za-z_][A-Za-z0-9_]*)"
)
# The plugin's macros (pkg/macros/macros.go of grafana-clickhouse-datasource 4.3.2).
MACROS_WITH_ARGS = {"timeFilter": 1, "timeFilter_ms": 1, "dateFilter": 1, "dateTimeFilter": 2, "dt": 2,
                    "timeInterval": 1, "timeInterval_ms": 1}
MACROS_PLAIN = {"fromTime", "toTime", "fromTime_ms", "toTime_ms", "interval_s"}


class CheckError(Exception):
    pass


def format_value(value, fmt: str | None) -> str:
    """A variable's value as Grafana (with the ClickHouse plugin's default format) inserts it."""
    values = value if isinstance(value, list) else [value]
    values = [str(v) for v in values]
    if fmt in (None, "raw", "text"):
        if isinstance(value, list):  # the plugin's default for multi-values: 'a','b'
            return ",".join("'" + v + "'" for v in values) if fmt is None else ",".join(values)
        return values[0]
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "csv":
        return ",".join(values)
    raise CheckError(f"variable format :{fmt} is not handled by this check")


def interpolate(sql: str, values: dict[str, object]) -> str:
    """Grafana's template interpolation of `sql` (variables and globals; not the macros)."""

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3) or m.group(5)
        fmt = m.group(2) or m.group(4)
        if name in values:
            return format_value(values[name], fmt)
        if name in GLOBALS:
            return GLOBALS[name]
        if name.startswith("__"):  # a plugin macro: expanded later
            return m.group(0)
        raise CheckError(f"${name} is not a variable of the dashboard")

    return VARIABLE.sub(sub, sql)


def macro_args(sql: str, start: int) -> tuple[list[str], int]:
    """Arguments of a macro call whose '(' is at `start`, and the index after ')'."""
    depth, args, current = 0, [], ""
    for i in range(start, len(sql)):
        c = sql[i]
        if c == "(":
            depth += 1
            if depth == 1:
                continue
        elif c == ")":
            depth -= 1
            if depth == 0:
                args.append(current.strip())
                return [a for a in args if a], i + 1
        elif c == "," and depth == 1:
            args.append(current.strip())
            current = ""
            continue
        current += c
    raise CheckError("unbalanced parentheses in a macro call")


def expand_macros(sql: str, t_from: dt.datetime, t_to: dt.datetime, interval_s: int = 60) -> str:
    """The plugin's backend macros, as pkg/macros/macros.go renders them."""

    def date(t):
        return f"toDate('{t.strftime('%Y-%m-%d')}')"

    def datetime_(t):
        return f"toDateTime({int(t.timestamp())})"

    def datetime64(t):
        return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"

    out, i = "", 0
    for m in re.finditer(r"\$__([A-Za-z_][A-Za-z0-9_]*)", sql):
        if m.start() < i:
            continue
        name = m.group(1)
        out += sql[i : m.start()]
        i = m.end()
        if name in MACROS_WITH_ARGS:
            if i >= len(sql) or sql[i] != "(":
                raise CheckError(f"$__{name} needs arguments")
            args, i = macro_args(sql, i)
            if len(args) != MACROS_WITH_ARGS[name]:
                raise CheckError(f"$__{name}: expected {MACROS_WITH_ARGS[name]} argument(s), got {len(args)}")
            col = args[0]
            if name == "timeFilter":
                out += f"{col} >= {datetime_(t_from)} AND {col} <= {datetime_(t_to)}"
            elif name == "timeFilter_ms":
                out += f"{col} >= {datetime64(t_from)} AND {col} <= {datetime64(t_to)}"
            elif name == "dateFilter":
                out += f"{col} >= {date(t_from)} AND {col} <= {date(t_to)}"
            elif name in ("dateTimeFilter", "dt"):
                out += (f"({col} >= {date(t_from)} AND {col} <= {date(t_to)}) AND "
                        f"({args[1]} >= {datetime_(t_from)} AND {args[1]} <= {datetime_(t_to)})")
            elif name == "timeInterval":
                out += f"toStartOfInterval(toDateTime({col}), INTERVAL {interval_s} second)"
            else:
                out += f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {interval_s * 1000} millisecond)"
        elif name in MACROS_PLAIN:
            out += {
                "fromTime": datetime_(t_from),
                "toTime": datetime_(t_to),
                "fromTime_ms": datetime64(t_from),
                "toTime_ms": datetime64(t_to),
                "interval_s": str(interval_s),
            }[name]
        elif name in ("from", "to"):  # Grafana globals: epoch milliseconds
            out += str(int((t_from if name == "from" else t_to).timestamp() * 1000))
        else:
            raise CheckError(f"$__{name} is not a macro of the ClickHouse plugin")
    return out + sql[i:]


def render(sql: str, values, t_from, t_to) -> str:
    return expand_macros(interpolate(sql, values), t_from, t_to)


class ClickHouse:
    def __init__(self, url: str, database: str, user: str | None, password: str | None):
        self.url = url.rstrip("/") + "/?" + urllib.parse.urlencode(
            {"database": database, "default_format": "JSONCompact"})
        self.headers = {}
        if user:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"

    def query(self, sql: str) -> dict:
        """The JSONCompact answer ({meta, data, rows, ...}) of a SELECT."""
        req = urllib.request.Request(self.url, data=sql.encode(), headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise CheckError(e.read().decode(errors="replace").strip()) from None
        except urllib.error.URLError as e:
            raise CheckError(f"cannot reach ClickHouse at {self.url}: {e.reason}") from None


def panel_field_names(panel: dict) -> set[str]:
    """Field names a panel refers to: its x field and its by-name overrides."""
    names = set()
    x_field = panel.get("options", {}).get("xField")
    if x_field:
        names.add(x_field)
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = o.get("matcher", {})
        if matcher.get("id") == "byName" and matcher.get("options"):
            names.add(matcher["options"])
    return names


def static_problems(paths: list[str]) -> list[str]:
    problems = []
    uids: dict[str, str] = {}
    titles: dict[str, str] = {}
    for path in paths:
        name = os.path.basename(path)
        try:
            dash = Dashboard(path)
        except (OSError, ValueError) as e:
            problems.append(f"{name}: {e}")
            continue
        uid, title = dash.json.get("uid"), dash.json.get("title")
        if not uid or not title:
            problems.append(f"{name}: no uid or no title")
        if uid in uids:
            problems.append(f"{name}: uid {uid!r} is also the uid of {uids[uid]}")
        if title in titles:
            problems.append(f"{name}: title {title!r} is also the title of {titles[title]}")
        uids[uid], titles[title] = name, name
        ids = [p.get("id") for p in dash.panels()]
        dup = sorted({i for i in ids if ids.count(i) > 1}, key=str)
        if dup:
            problems.append(f"{name}: panel ids used twice: {dup}")
        values = {v: "x" for v in dash.variables}
        t = dt.datetime.now(dt.timezone.utc)
        for panel, target, ds in dash.targets():
            if ds != CLICKHOUSE:
                continue
            where = f"{name}: {panel.get('title')!r}"
            if not panel.get("title") or not panel.get("description"):
                problems.append(f"{where}: a ClickHouse panel needs a title and a description")
            if target.get("editorType", "sql") != "sql" or not target.get("rawSql", "").strip():
                problems.append(f"{where}: needs raw SQL (editorType sql, rawSql)")
                continue
            try:
                render(target["rawSql"], values, t, t)
            except CheckError as e:
                problems.append(f"{where}: {e}")
        for var, query, ds in dash.query_variables():
            if ds == CLICKHOUSE:
                try:
                    render(query, values, t, t)
                except CheckError as e:
                    problems.append(f"{name}: variable {var.get('name')}: {e}")
    return problems


def variable_values(dash: Dashboard, ch: ClickHouse, given: dict[str, str], t_from, t_to, report):
    """Every variable's value, in dashboard order: given, else a query variable's first
    result (its query run with the variables before it), else the current or first option."""
    values: dict[str, object] = {}
    ok = True
    for name, var in dash.variables.items():
        kind = var.get("type")
        if kind == "query" and dash.ds_type(var.get("datasource")) == CLICKHOUSE:
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query") or query.get("rawSql") or ""
            where = f"{dash.name}: variable {name}"
            try:
                res = ch.query(render(query, values, t_from, t_to))
            except CheckError as e:
                report(False, where, str(e))
                return values, False  # the variables after it may depend on it
            rows = res.get("data", [])
            found = [str(r[0]) for r in rows]
            report(True, where, f"{len(rows)} values, first {found[0] if found else None!r}")
            if name in given:
                if given[name] not in found:
                    report(False, where, f"--set {name}={given[name]} is not among its values {found[:20]}")
                    ok = False
                values[name] = given[name]
            elif not rows:
                report(False, where, "no value: the panels cannot be checked (load data or --set it)")
                ok = False
            else:
                values[name] = found[0]
        elif name in given:
            values[name] = given[name]
        elif kind == "datasource":
            values[name] = (var.get("current") or {}).get("value") or var.get("query", "")
        else:
            current = (var.get("current") or {}).get("value")
            options = [o.get("value") for o in var.get("options", [])]
            if current in (None, "", []):
                current = options[0] if options else str(var.get("query", "")).split(",")[0]
            values[name] = current
    return values, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dashboards", nargs="*", help="dashboard JSON files (default: deploy/grafana/dashboards)")
    parser.add_argument("--clickhouse", help="ClickHouse HTTP URL; without it the queries are not run")
    parser.add_argument("--database", default="wxpulse", help="the data source's default database")
    parser.add_argument("--user", default=os.environ.get("WXPULSE_CHECK_CLICKHOUSE_USER"))
    parser.add_argument("--password", default=os.environ.get("WXPULSE_CHECK_CLICKHOUSE_PASSWORD"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a variable's value")
    parser.add_argument("--from", dest="t_from", help="time range start, ISO 8601 (default: 30 days ago)")
    parser.add_argument("--to", dest="t_to", help="time range end, ISO 8601 (default: now)")
    parser.add_argument("--require-rows", action="store_true", help="fail on a panel query without rows")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each query as run")
    args = parser.parse_args()

    paths = args.dashboards or sorted(glob.glob(DASHBOARDS))
    given = dict(s.split("=", 1) for s in args.set)
    now = dt.datetime.now(dt.timezone.utc)
    t_to = dt.datetime.fromisoformat(args.t_to) if args.t_to else now
    t_from = dt.datetime.fromisoformat(args.t_from) if args.t_from else t_to - dt.timedelta(days=30)

    problems = static_problems(paths)
    for p in problems:
        print(f"FAIL  {p}")
    n_static = sum(1 for path in paths if os.path.exists(path))
    if not args.clickhouse:
        print(f"static checks of {n_static} dashboards: {len(problems)} problems")
        print("SKIP  running the ClickHouse queries: no ClickHouse URL (--clickhouse URL)")
        return 1 if problems else 0

    ch = ClickHouse(args.clickhouse, args.database, args.user, args.password)
    counts = {"ran": 0, "failed": 0}

    def report(ok: bool, where: str, detail: str) -> None:
        if not ok:
            counts["failed"] += 1
        print(f"{'ok  ' if ok else 'FAIL'}  {where}: {detail}")

    for path in paths:
        dash = Dashboard(path)
        if not any(ds == CLICKHOUSE for _, _, ds in dash.targets()):
            continue
        values, ok = variable_values(dash, ch, given, t_from, t_to, report)
        if not ok:
            continue
        shown = {k: v for k, v in values.items() if k in given or dash.variables[k].get("type") != "datasource"}
        print(f"{dash.name}: variables {shown}")
        for panel, target, ds in dash.targets():
            if ds != CLICKHOUSE:
                continue
            where = f"{dash.name}: {panel.get('title')}"
            try:
                sql = render(target.get("rawSql", ""), values, t_from, t_to)
                if args.verbose:
                    print(sql)
                res = ch.query(sql)
            except CheckError as e:
                report(False, where, str(e))
                continue
            counts["ran"] += 1
            columns = [c["name"] for c in res.get("meta", [])]
            rows = res.get("rows", len(res.get("data", [])))
            missing = sorted(panel_field_names(panel) - set(columns))
            if missing:
                report(False, where, f"the panel names fields {missing} that the query does not return {columns}")
            elif target.get("format") == 0 and not any(
                c["type"].removeprefix("Nullable(").startswith(("Date", "DateTime")) for c in res["meta"]
            ):
                report(False, where, "a time-series query (format 0) without a Date/DateTime column")
            elif args.require_rows and rows == 0:
                report(False, where, f"no rows (columns {columns})")
            else:
                report(True, where, f"{rows} rows, columns {columns}")

    total_failed = counts["failed"] + len(problems)
    print(f"{counts['ran']} ClickHouse queries ran on {args.clickhouse} (database {args.database}); "
          f"{total_failed} problems")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
