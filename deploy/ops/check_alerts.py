#!/usr/bin/env python3
"""Checks the alerting rules beyond what promtool checks:

- every alert has labels.severity (critical|warning) and annotations summary, description
  and runbook_url;
- every runbook_url points at docs/runbook.md#<anchor> and that heading exists;
- every alert name appears in a promtool test (deploy/prometheus/tests/*.yml), both in a
  case that expects it to fire and in one that expects silence.

Needs PyYAML (present in deploy/ops/.venv).
"""

from __future__ import annotations

import glob
import os
import re
import sys

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "rules", "*.yml")
TESTS = os.path.join(ROOT, "deploy", "prometheus", "tests", "*.yml")
RUNBOOK = os.path.join(ROOT, "docs", "runbook.md")


def github_anchor(heading: str) -> str:
    """The anchor GitHub generates for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def main() -> int:
    problems: list[str] = []
    anchors = set()
    if os.path.exists(RUNBOOK):
        for line in open(RUNBOOK, encoding="utf-8"):
            m = re.match(r"^#{1,6}\s+(.*)$", line)
            if m:
                anchors.add(github_anchor(m.group(1)))
    else:
        problems.append(f"{RUNBOOK} does not exist")

    alerts = []
    for path in sorted(glob.glob(RULES)):
        for group in yaml.safe_load(open(path, encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    alerts.append(rule)
    if not alerts:
        problems.append("no alerting rules found")

    fires, silent = set(), set()
    for path in sorted(glob.glob(TESTS)):
        for test in yaml.safe_load(open(path, encoding="utf-8")).get("tests", []):
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else silent).add(case["alertname"])

    for rule in alerts:
        name = rule["alert"]
        if rule.get("labels", {}).get("severity") not in ("critical", "warning"):
            problems.append(f"{name}: labels.severity must be critical or warning")
        ann = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{name}: missing annotation {key}")
        url = ann.get("runbook_url", "")
        m = re.search(r"docs/runbook\.md#([\w-]+)$", url)
        if not m:
            problems.append(f"{name}: runbook_url {url!r} does not point into docs/runbook.md")
        elif m.group(1) not in anchors:
            problems.append(f"{name}: docs/runbook.md has no heading for #{m.group(1)}")
        if name not in fires:
            problems.append(f"{name}: no promtool test where it fires")
        if name not in silent:
            problems.append(f"{name}: no promtool test where it stays silent")

    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"{len(alerts)} alerting rules: labels, annotations, runbook anchors and tests present")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
