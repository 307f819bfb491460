#!/usr/bin/env python3
"""Lists the metric names that the Grafana dashboards and the Prometheus rules query.

    dashboard_metrics.py               every name: raw metrics and recording rules
    dashboard_metrics.py --raw         raw metric names only (what the services must export);
                                       recording rules are replaced by their source metrics
    dashboard_metrics.py --recorded    recording-rule names only
    dashboard_metrics.py --check       exit 1 unless every raw name is in docs/CONTRACT.md,
                                       every recording-rule name is defined, and every table
                                       a ClickHouse panel or variable reads is a BI view (v_*)
                                       of schemas/clickhouse/migrations or a system table
    dashboard_metrics.py --clickhouse-tables
                                       the tables the ClickHouse panels and variables read
    dashboard_metrics.py --exprs-as-rules FILE
                                       write the dashboards' PromQL, Grafana variables
                                       substituted, as a rule file for `promtool check rules`

Names are printed one per line, sorted, exactly as a query uses them: a histogram appears
as wxpulse_..._bucket / _sum / _count, which are the series Prometheus stores. An
end-to-end test can therefore check each printed name against a Prometheus that scrapes
the real services (recording-rule names exist once the rules have been evaluated).

Only Prometheus queries are read for metric names: each panel target and query variable is
attributed to its data source (its own, else its panel's, else the default, Prometheus),
resolving `${datasource}`-style variables and the provisioned uids. ClickHouse targets (SQL
in `rawSql`, e.g. the business dashboard on the BI views) are never scanned for metric
names; their tables are checked against the migrations instead, and
deploy/ops/check_dashboard_sql.py runs their SQL on a ClickHouse.

Only the standard library and PyYAML-free parsing are used, so the script runs anywhere
python3 does: rule files are read with a small line-based YAML reader that understands the
`record:`/`alert:`/`expr:` keys our rule files use (plain, quoted and block scalars).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DASHBOARDS = os.path.join(ROOT, "deploy", "grafana", "dashboards", "*.json")
RULES = os.path.join(ROOT, "deploy", "prometheus", "rules", "*.yml")
CONTRACT = os.path.join(ROOT, "docs", "CONTRACT.md")
DATASOURCES = os.path.join(ROOT, "deploy", "grafana", "provisioning", "datasources", "*.yml")
MIGRATIONS = os.path.join(ROOT, "schemas", "clickhouse", "migrations", "*.sql")

PROMETHEUS = "prometheus"
CLICKHOUSE = "grafana-clickhouse-datasource"
# The data source of a panel that names none: the provisioned default (isDefault: true).
DEFAULT_DATASOURCE = PROMETHEUS

NAME = re.compile(r"wxpulse[_:][a-z0-9_:]*")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Grafana variables -> values that keep the PromQL valid for promtool.
GRAFANA_VARS = [
    (re.compile(r"\$__rate_interval|\$\{__rate_interval\}"), "5m"),
    (re.compile(r"\$__interval|\$\{__interval\}"), "1m"),
    (re.compile(r"\$__range|\$\{__range\}"), "1h"),
    (re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?"), ".*"),
]


def names_in(expr: str) -> set[str]:
    """Metric-like identifiers in a PromQL expression, ignoring string literals
    (label values such as topic="wxpulse.menu_clicks")."""
    return set(NAME.findall(STRING.sub('""', expr)))


def read_rule_exprs(path: str) -> list[tuple[str, str, str]]:
    """(kind, name, expr) for every rule in a Prometheus rule file; kind is record|alert."""
    rules: list[tuple[str, str, str]] = []
    lines = open(path, encoding="utf-8").read().splitlines()
    current: list[str] = ["", ""]  # kind, name
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*-?\s*(record|alert):\s*(\S+)\s*$", line)
        if m:
            current = [m.group(1), m.group(2)]
            i += 1
            continue
        m = re.match(r"^(\s*)-?\s*expr:\s*(.*)$", line)
        if m and current[0]:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value in ("|", "|-", ">", ">-"):
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                expr = " ".join(part for part in body if part)
            else:
                expr = value.strip("'\"") if value[:1] in "'\"" else value
                i += 1
            rules.append((current[0], current[1], expr))
            continue
        i += 1
    return rules


def provisioned_datasources(pattern: str = DATASOURCES) -> dict[str, str]:
    """uid and name -> plugin type of the provisioned data sources (a line-based reader of
    the `datasources:` list: `- name:`, `uid:`, `type:` keys)."""
    found: dict[str, str] = {}
    for path in sorted(glob.glob(pattern)):
        entry: dict[str, str] = {}
        entries = [entry]
        for line in open(path, encoding="utf-8"):
            m = re.match(r"^\s*(-\s+)?(name|uid|type):\s*['\"]?([^'\"#]+?)['\"]?\s*(#.*)?$", line)
            if not m:
                continue
            if m.group(1):
                entry = {}
                entries.append(entry)
            entry[m.group(2)] = m.group(3)
        for e in entries:
            if "type" in e:
                for key in ("uid", "name"):
                    if key in e:
                        found[e[key]] = e["type"]
    return found


class Dashboard:
    """A dashboard and the data source type of each of its queries."""

    def __init__(self, path: str, datasources: dict[str, str] | None = None):
        self.path = path
        self.name = os.path.basename(path)
        self.json = json.load(open(path, encoding="utf-8"))
        self.datasources = provisioned_datasources() if datasources is None else datasources
        self.variables = {v.get("name"): v for v in self.json.get("templating", {}).get("list", [])}

    def ds_type(self, ds, fallback: str | None = None) -> str | None:
        """Plugin type of a data source reference (a dict with type/uid, a uid or name, a
        `$var`/`${var}` data source variable); `fallback` when there is none."""
        if ds is None or ds == "" or ds == {}:
            return fallback
        if isinstance(ds, dict):
            if ds.get("type"):
                return ds["type"]
            ds = ds.get("uid")
            if not ds:
                return fallback
        ds = str(ds)
        m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", ds)
        if m:
            var = self.variables.get(m.group(1))
            if var and var.get("type") == "datasource":
                return var.get("query")
            return None
        if ds in ("-- Mixed --", "-- Grafana --", "-- Dashboard --"):
            return ds
        return self.datasources.get(ds, ds.lower() if ds.lower() == PROMETHEUS else None)

    def panels(self):
        """Every panel, rows' nested panels included."""

        def walk(panels):
            for panel in panels:
                yield panel
                yield from walk(panel.get("panels", []))

        yield from walk(self.json.get("panels", []))

    def targets(self):
        """(panel, target, data source type) of every panel query."""
        for panel in self.panels():
            panel_ds = self.ds_type(panel.get("datasource"), DEFAULT_DATASOURCE)
            for target in panel.get("targets", []):
                yield panel, target, self.ds_type(target.get("datasource"), panel_ds)

    def query_variables(self):
        """(variable, query text, data source type) of every query variable."""
        for var in self.variables.values():
            if var.get("type") != "query":
                continue
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query") or query.get("rawSql") or ""
            yield var, query or "", self.ds_type(var.get("datasource"), DEFAULT_DATASOURCE)


def dashboard_exprs(path: str) -> list[tuple[str, str]]:
    """(where, expr) for every Prometheus query of a dashboard: panel targets and query
    variables whose data source is Prometheus. Queries of other data sources (ClickHouse
    SQL) are skipped."""
    dash = Dashboard(path)
    out: list[tuple[str, str]] = []
    for panel, target, ds in dash.targets():
        if ds == PROMETHEUS and target.get("expr"):
            out.append((f"{dash.name}: {panel.get('title')}", target["expr"]))
    for var, query, ds in dash.query_variables():
        if ds == PROMETHEUS and query:
            out.append((f"{dash.name}: variable {var.get('name')}", query))
    return out


def unknown_datasources(path: str) -> list[str]:
    """Queries whose data source is neither Prometheus nor ClickHouse (nor Grafana's own):
    their metric names or tables would go unchecked."""
    dash = Dashboard(path)
    known = (PROMETHEUS, CLICKHOUSE, "-- Grafana --", "-- Dashboard --", "grafana", "datasource")
    out = []
    for panel, target, ds in dash.targets():
        if ds not in known:
            out.append(f"{dash.name}: {panel.get('title')}: unknown data source {target.get('datasource', panel.get('datasource'))!r}")
    for var, _, ds in dash.query_variables():
        if ds not in known:
            out.append(f"{dash.name}: variable {var.get('name')}: unknown data source {var.get('datasource')!r}")
    return out


def clickhouse_queries(path: str) -> list[tuple[str, str, dict | None]]:
    """(where, sql, panel or None for a variable) for every ClickHouse query of a dashboard."""
    dash = Dashboard(path)
    out: list[tuple[str, str, dict | None]] = []
    for var, query, ds in dash.query_variables():
        if ds == CLICKHOUSE:
            out.append((f"{dash.name}: variable {var.get('name')}", query, None))
    for panel, target, ds in dash.targets():
        if ds == CLICKHOUSE:
            out.append((f"{dash.name}: {panel.get('title')} [{target.get('refId', '')}]",
                        target.get("rawSql", ""), panel))
    return out


SQL_STRING_OR_COMMENT = re.compile(r"'(?:[^'\\]|\\.|'')*'|--[^\n]*|/\*.*?\*/", re.S)
SQL_IDENT = r"(?:`[^`]+`|\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_]*)"


def sql_tables(sql: str) -> set[str]:
    """Tables and views a SELECT reads: the names after FROM and JOIN, `db.` kept when
    given, minus CTE names; table functions (`numbers(10)`) appear as `name()`."""
    text = SQL_STRING_OR_COMMENT.sub("''", sql)
    ctes = {m.group(1).strip('`"') for m in re.finditer(rf"\b({SQL_IDENT})\s+AS\s*\(", text, re.I)}
    out = set()
    for m in re.finditer(rf"\b(?:FROM|JOIN)\s+({SQL_IDENT}(?:\s*\.\s*{SQL_IDENT})?)(\s*\()?", text, re.I):
        name = re.sub(r"\s+", "", m.group(1)).replace("`", "").replace('"', "")
        if m.group(2):
            out.add(name + "()")
        elif name not in ctes:
            out.add(name)
    return out


def migration_objects(pattern: str = MIGRATIONS) -> set[str]:
    """Names of the tables and views the migrations create."""
    found = set()
    for path in sorted(glob.glob(pattern)):
        sql = SQL_STRING_OR_COMMENT.sub("''", open(path, encoding="utf-8").read())
        for m in re.finditer(
            r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|MATERIALIZED\s+VIEW|DICTIONARY)\s+"
            r"(?:IF\s+NOT\s+EXISTS\s+)?(?:[A-Za-z_{}][A-Za-z0-9_{}]*\.)?([A-Za-z_][A-Za-z0-9_]*)",
            sql,
            re.I,
        ):
            found.add(m.group(1))
    return found


def check_clickhouse_tables(paths: list[str], database: str = "wxpulse") -> tuple[list[str], set[str]]:
    """Problems with the tables the ClickHouse queries read, and those tables. A query may
    read the BI views (v_*) of the migrations, in the data source's default database (or
    `wxpulse.` explicitly), and ClickHouse's system tables; not the rollups or raw tables
    behind the views (their columns are aggregate states and fan ids), nor table functions."""
    objects = migration_objects()
    problems: list[str] = []
    seen: set[str] = set()
    for path in paths:
        for where, sql, _ in clickhouse_queries(path):
            if not sql.strip():
                problems.append(f"{where}: empty SQL")
                continue
            tables = sql_tables(sql)
            if not tables:
                problems.append(f"{where}: reads no table")
            for name in sorted(tables):
                seen.add(name)
                db, _, table = name.rpartition(".")
                if name.endswith("()"):
                    problems.append(f"{where}: table function {name} (read the BI views)")
                elif db == "system":
                    continue
                elif db not in ("", database):
                    problems.append(f"{where}: {name} is not in database {database}")
                elif table not in objects:
                    problems.append(f"{where}: {name} is not created by schemas/clickhouse/migrations")
                elif not table.startswith("v_"):
                    problems.append(f"{where}: {name} is not a BI view (v_*, schemas/clickhouse/VIEWS.md)")
    return problems, seen


def contract_metrics(path: str = CONTRACT) -> dict[str, str]:
    """name -> type from the metrics table of docs/CONTRACT.md."""
    found = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^\|\s*`(wxpulse_[a-z0-9_]+)`\s*\|\s*([a-z]+)", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def collect():
    rule_files = sorted(glob.glob(RULES))
    recording: dict[str, set[str]] = {}
    referenced: set[str] = set()
    for path in rule_files:
        for kind, name, expr in read_rule_exprs(path):
            names = names_in(expr)
            referenced |= names
            if kind == "record":
                recording[name] = names
    dash_exprs = []
    for path in sorted(glob.glob(DASHBOARDS)):
        dash_exprs += dashboard_exprs(path)
    for _, expr in dash_exprs:
        referenced |= names_in(expr)
    return referenced, recording, dash_exprs


def raw_sources(name: str, recording: dict[str, set[str]], seen=None) -> set[str]:
    if ":" not in name:
        return {name}
    seen = seen or set()
    if name in seen:
        return set()
    seen.add(name)
    out: set[str] = set()
    for source in recording.get(name, set()):
        out |= raw_sources(source, recording, seen)
    return out


def check(referenced: set[str], recording: dict[str, set[str]]) -> list[str]:
    contract = contract_metrics()
    problems = []
    for name in sorted(referenced):
        if ":" in name:
            if name not in recording:
                problems.append(f"{name}: used but not defined as a recording rule")
            continue
        if name in contract:
            if contract[name] == "histogram":
                problems.append(f"{name}: a histogram is queried through _bucket/_sum/_count")
            continue
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base and contract.get(base) == "histogram":
            continue
        problems.append(f"{name}: not a metric of docs/CONTRACT.md")
    return problems


def write_exprs_as_rules(dash_exprs, path: str) -> None:
    lines = ["groups:", "  - name: dashboard-queries", "    rules:"]
    for n, (where, expr) in enumerate(dash_exprs):
        # Grafana's label_values(metric, label) is not PromQL: check the metric selector.
        m = re.match(r"^\s*label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", expr)
        if m:
            expr = m.group(1)
        for pattern, value in GRAFANA_VARS:
            expr = pattern.sub(value, expr)
        lines.append(f"      # {where}")
        lines.append(f"      - record: dashboard:query_{n}")
        lines.append(f"        expr: {json.dumps(expr)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--raw", action="store_true", help="raw metric names only")
    mode.add_argument("--recorded", action="store_true", help="recording-rule names only")
    mode.add_argument("--check", action="store_true", help="check names against CONTRACT.md")
    mode.add_argument("--exprs-as-rules", metavar="FILE", help="write dashboard PromQL as a rule file")
    mode.add_argument("--clickhouse-tables", action="store_true",
                      help="tables read by the ClickHouse panels and variables")
    args = parser.parse_args()

    dashboards = sorted(glob.glob(DASHBOARDS))
    if args.clickhouse_tables:
        _, tables = check_clickhouse_tables(dashboards)
        print("\n".join(sorted(tables)))
        return 0
    referenced, recording, dash_exprs = collect()
    if not dash_exprs:
        print(f"no dashboard queries found under {DASHBOARDS}", file=sys.stderr)
        return 1
    if args.check:
        problems = check(referenced, recording)
        table_problems, tables = check_clickhouse_tables(dashboards)
        problems += table_problems
        for path in dashboards:
            problems += unknown_datasources(path)
        for p in problems:
            print(p, file=sys.stderr)
        if not problems:
            print(f"{len(referenced)} metric names checked against docs/CONTRACT.md and the recording rules; "
                  f"{len(tables)} ClickHouse tables against the migrations")
        return 1 if problems else 0
    if args.exprs_as_rules:
        write_exprs_as_rules(dash_exprs, args.exprs_as_rules)
        return 0
    if args.raw:
        names = set()
        for name in referenced:
            names |= raw_sources(name, recording)
    elif args.recorded:
        names = {n for n in referenced if ":" in n}
    else:
        names = referenced
    print("\n".join(sorted(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
