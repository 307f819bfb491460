#!/usr/bin/env python3
"""Lists the metric names that the Grafana dashboards and the Prometheus rules query.

    dashboard_metrics.py               every name: raw metrics and recording rules
    dashboard_metrics.py --raw         raw metric names only (what the services must export);
                                       recording rules are replaced by their source metrics
    dashboard_metrics.py --recorded    recording-rule names only
    dashboard_metrics.py --check       exit 1 unless every raw name is in docs/CONTRACT.md
                                       and every recording-rule name is defined
    dashboard_metrics.py --exprs-as-rules FILE
                                       write the dashboards' PromQL, Grafana variables
                                       substituted, as a rule file for `promtool check rules`

Names are printed one per line, sorted, exactly as a query uses them: a histogram appears
as wxpulse_..._bucket / _sum / _count, which are the series Prometheus stores. An
end-to-end test can therefore check each printed name against a Prometheus that scrapes
the real services (recording-rule names exist once the rules have been evaluated).

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


def dashboard_exprs(path: str) -> list[tuple[str, str]]:
    """(where, expr) for every Prometheus query of a dashboard: panel targets and
    query variables. Targets of other data sources (ClickHouse SQL) are skipped."""
    dash = json.load(open(path, encoding="utf-8"))
    out: list[tuple[str, str]] = []

    def is_prometheus(ds) -> bool:
        if ds is None:
            return True
        if isinstance(ds, dict):
            return ds.get("type") in (None, "prometheus")
        return "prometheus" in str(ds).lower() or str(ds).startswith("$")

    def walk(panels):
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                ds = target.get("datasource", panel.get("datasource"))
                if "expr" in target and is_prometheus(ds):
                    out.append((f"{os.path.basename(path)}: {panel.get('title')}", target["expr"]))

    walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") != "query" or not is_prometheus(var.get("datasource")):
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        if query:
            out.append((f"{os.path.basename(path)}: variable {var.get('name')}", query))
    return out


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
    args = parser.parse_args()

    referenced, recording, dash_exprs = collect()
    if not dash_exprs:
        print(f"no dashboard queries found under {DASHBOARDS}", file=sys.stderr)
        return 1
    if args.check:
        problems = check(referenced, recording)
        for p in problems:
            print(p, file=sys.stderr)
        if not problems:
            print(f"{len(referenced)} metric names checked against docs/CONTRACT.md and the recording rules")
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
