#!/usr/bin/env python3
"""Checks what a schema validator cannot: that a rendered kustomize overlay hangs together
and matches docs/CONTRACT.md.

    kubectl kustomize deploy/k8s/overlays/production | check_k8s.py --partitions 12 -

For every consumer Deployment: the binary and topic come from the contract; probes hit
/healthz and /readyz on the metrics port; resources are the agreed ones; secrets arrive
under the agreed env names; it has a PodDisruptionBudget (maxUnavailable 1), a Service,
and a KEDA ScaledObject on its own consumer group and topic whose bootstrap servers are
the services' own and whose maxReplicaCount does not exceed the topic's partitions.
An overflow lane (env WXPULSE__OVERFLOW__LANE=overflow) is such a consumer too, checked
against its row of the contract's overflow-lane table: named `<binary>-overflow`, on
`<topic>.overflow` under group `wxpulse-<service>-overflow`; every lane of the table is
there, and exactly the primaries of those streams divert (WXPULSE__OVERFLOW__ENABLED=true in
their own env, never in the shared ConfigMap: chat-messages refuses it), so no diverted
record waits for a lane that is not deployed.
The fan-profile mirror (`wxpulse dims mirror`, its row in the contract) must be there too,
with the same pod checks, a PodDisruptionBudget and a Service, the contract's fixed
replica count and no autoscaler.
Needs PyYAML (present in deploy/ops/.venv).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CONTRACT = os.path.join(ROOT, "docs", "CONTRACT.md")

EXPECTED_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
SECRET_ENV = {"WXPULSE__PII__KEY", "WXPULSE__CLICKHOUSE__PASSWORD", "WXPULSE_KAFKA_SASL_USERNAME", "WXPULSE_KAFKA_SASL_PASSWORD"}


def contract_services() -> dict[str, str]:
    """binary -> topic, from the binaries table of docs/CONTRACT.md."""
    out = {}
    for line in open(CONTRACT, encoding="utf-8"):
        m = re.match(r"^\|\s*`(wxpulse-[a-z-]+)`\s*\|[^|]*\|\s*`(wxpulse\.[a-z_]+)`", line)
        if m:
            out[m.group(1)] = m.group(2)
    if not out:
        sys.exit(f"no service binaries found in {CONTRACT}")
    return out


def contract_overflow_lanes() -> dict[str, dict[str, str]]:
    """Deployment -> binary, topic, group, from the overflow-lane table of docs/CONTRACT.md."""
    pattern = (r"^\|\s*[a-z-]+\s*\|\s*`(wxpulse-[a-z-]+-overflow)`\s*\|\s*`(wxpulse-[a-z-]+)`\s*\|[^|]*\|"
               r"\s*`(wxpulse\.[a-z_]+\.overflow)`\s*\|\s*`(wxpulse-[a-z-]+-overflow)`\s*\|")
    out = {}
    for line in open(CONTRACT, encoding="utf-8"):
        m = re.match(pattern, line)
        if m:
            out[m.group(1)] = dict(zip(("binary", "topic", "group"), m.groups()[1:], strict=True))
    if not out:
        sys.exit(f"no overflow lanes found in {CONTRACT}")
    return out


def env_value(container: dict, name: str) -> str | None:
    """A literal env var of the container (None if absent or taken from a reference)."""
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


def contract_mirror() -> dict[str, str]:
    """The fan-profile mirror's row of docs/CONTRACT.md: deployment, topic, group, table,
    replicas."""
    pattern = (r"^\|\s*`wxpulse dims mirror`\s*\|[^|]*?`(wxpulse-[a-z-]+)`[^|]*\|\s*`(wxpulse\.[a-z_.]+)`\s*\|"
               r"\s*`([a-z-]+)`\s*\|\s*`([a-z_]+)`\s*\|\s*(\d+)\s*\|")
    for line in open(CONTRACT, encoding="utf-8"):
        m = re.match(pattern, line)
        if m:
            return dict(zip(("deployment", "topic", "group", "table", "replicas"), m.groups(), strict=True))
    sys.exit(f"no `wxpulse dims mirror` row in {CONTRACT}")


def check_pod(dep: dict, configmaps: dict, problems: list[str]) -> dict | None:
    """The checks every wxpulse process's pod gets; returns its container."""
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    where = f"Deployment {dep['metadata']['name']}"
    annotations = spec["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != "9464":
        problems.append(f"{where}: pod lacks prometheus.io scrape annotations for port 9464")
    if len(pod["containers"]) != 1:
        problems.append(f"{where}: expected one container")
    c = pod["containers"][0]
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    if ports.get("metrics") != 9464:
        problems.append(f"{where}: no containerPort 9464 named metrics")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("metrics", 9464):
            problems.append(f"{where}: {probe} must GET {path} on the metrics port")
    if c.get("resources") != EXPECTED_RESOURCES:
        problems.append(f"{where}: resources {c.get('resources')} != {EXPECTED_RESOURCES}")
    env_names = {e["name"] for e in c.get("env", [])}
    if not SECRET_ENV <= env_names:
        problems.append(f"{where}: missing secret env {sorted(SECRET_ENV - env_names)}")
    refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
    if not refs or refs[0] not in configmaps:
        problems.append(f"{where}: envFrom does not reference a rendered ConfigMap")
    sc = pod.get("securityContext", {})
    if not sc.get("runAsNonRoot") or sc.get("runAsUser") != 10001:
        problems.append(f"{where}: must run as non-root uid 10001 (the image's user)")
    return c


def check_disruption(dep: dict, by_kind: dict, problems: list[str]) -> None:
    """One PodDisruptionBudget (maxUnavailable 1) and a Service for the Deployment."""
    where = f"Deployment {dep['metadata']['name']}"
    selector = dep["spec"]["selector"]["matchLabels"]
    pdbs = [p for p in by_kind.get("PodDisruptionBudget", []) if p["spec"]["selector"].get("matchLabels") == selector]
    if len(pdbs) != 1 or pdbs[0]["spec"].get("maxUnavailable") != 1:
        problems.append(f"{where}: needs exactly one PodDisruptionBudget with maxUnavailable 1")
    if not any(s["spec"].get("selector") == selector for s in by_kind.get("Service", [])):
        problems.append(f"{where}: no Service selects it")


def check_mirror(by_kind: dict, configmaps: dict, problems: list[str]) -> None:
    """The fan-profile mirror: present, as the contract says."""
    want = contract_mirror()
    mirrors = [d for d in by_kind.get("Deployment", [])
               if (d["spec"]["template"]["spec"]["containers"][0].get("command") or [])[:3] == ["wxpulse", "dims", "mirror"]]
    if len(mirrors) != 1:
        problems.append(f"expected one Deployment running `wxpulse dims mirror` (found {len(mirrors)}): "
                        f"without it the follower, unfollow and monthly-active views have no profiles")
        return
    dep = mirrors[0]
    name = dep["metadata"]["name"]
    where = f"Deployment {name}"
    if name != want["deployment"]:
        problems.append(f"{where}: should be named {want['deployment']} (docs/CONTRACT.md)")
    if dep["spec"].get("replicas") != int(want["replicas"]):
        problems.append(f"{where}: replicas must be {want['replicas']} (the partitions of {want['topic']})")
    if dep["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "mirror":
        problems.append(f"{where}: needs the label app.kubernetes.io/component=mirror")
    check_pod(dep, configmaps, problems)
    check_disruption(dep, by_kind, problems)
    if any(s["spec"]["scaleTargetRef"]["name"] == name for s in by_kind.get("ScaledObject", [])):
        problems.append(f"{where}: must not be autoscaled (one partition, fixed replicas)")


def check(docs: list[dict], partitions: int) -> list[str]:
    problems: list[str] = []
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    env_cm = next((d for n, d in configmaps.items() if n.startswith("wxpulse-env")), None)
    if env_cm is None:
        return ["no ConfigMap wxpulse-env"]
    brokers = env_cm["data"].get("WXPULSE__KAFKA__BROKERS")
    services = contract_services()
    lanes = contract_overflow_lanes()
    for key in ("WXPULSE__OVERFLOW__ENABLED", "WXPULSE__OVERFLOW__LANE"):
        if key in env_cm["data"]:
            problems.append(f"ConfigMap wxpulse-env sets {key}: it belongs in the Deployments that need it "
                            f"(the shared value would reach chat-messages, which refuses it)")
    found_lanes: set[str] = set()
    diverting: set[str] = set()

    consumers = [d for d in by_kind.get("Deployment", [])
                 if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "consumer"]
    found_binaries = set()
    for dep in consumers:
        name = dep["metadata"]["name"]
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        where = f"Deployment {name}"
        if "replicas" in spec:
            problems.append(f"{where}: sets spec.replicas, which fights the KEDA-managed HPA")
        c = pod["containers"][0]
        binary = (c.get("command") or [""])[0]
        if binary not in services:
            problems.append(f"{where}: runs {binary!r}, not a service binary of the contract")
            continue
        service = binary.removeprefix("wxpulse-")
        topic = services[binary]
        if env_value(c, "WXPULSE__OVERFLOW__LANE") == "overflow":
            lane = lanes.get(name)
            if lane is None or lane["binary"] != binary:
                problems.append(f"{where}: an overflow lane of {binary} that docs/CONTRACT.md does not list "
                                f"(expected {binary}-overflow, for a stream with a lane)")
                continue
            found_lanes.add(name)
            if env_value(c, "WXPULSE__OVERFLOW__ENABLED") == "true":
                problems.append(f"{where}: an overflow lane must not divert (WXPULSE__OVERFLOW__ENABLED)")
            service, topic = f"{service}-overflow", lane["topic"]
        else:
            found_binaries.add(binary)
            if name != binary:
                problems.append(f"{where}: should be named after its binary {binary}")
            if env_value(c, "WXPULSE__OVERFLOW__ENABLED") == "true":
                diverting.add(binary)
        check_pod(dep, configmaps, problems)

        check_disruption(dep, by_kind, problems)
        scaled = [s for s in by_kind.get("ScaledObject", []) if s["spec"]["scaleTargetRef"]["name"] == name]
        if len(scaled) != 1:
            problems.append(f"{where}: needs exactly one ScaledObject (has {len(scaled)})")
            continue
        so = scaled[0]["spec"]
        lo, hi = so.get("minReplicaCount", 0), so.get("maxReplicaCount", 100)
        if not 1 <= lo <= hi <= partitions:
            problems.append(f"ScaledObject {name}: need 1 <= min ({lo}) <= max ({hi}) <= partitions ({partitions})")
        triggers = so.get("triggers", [])
        if len(triggers) != 1 or triggers[0].get("type") != "kafka":
            problems.append(f"ScaledObject {name}: expected one kafka trigger")
            continue
        md = triggers[0]["metadata"]
        expected = {"topic": topic, "consumerGroup": f"wxpulse-{service}", "bootstrapServers": brokers,
                    "allowIdleConsumers": "false"}
        for key, value in expected.items():
            if md.get(key) != value:
                problems.append(f"ScaledObject {name}: {key} is {md.get(key)!r}, expected {value!r}")
        if not str(md.get("lagThreshold", "")).isdigit():
            problems.append(f"ScaledObject {name}: lagThreshold must be a quoted integer")
        if md.get("sasl") and "authenticationRef" not in triggers[0]:
            problems.append(f"ScaledObject {name}: sasl without an authenticationRef")
        auth = triggers[0].get("authenticationRef", {}).get("name")
        if auth and not any(t["metadata"]["name"] == auth for t in by_kind.get("TriggerAuthentication", [])):
            problems.append(f"ScaledObject {name}: TriggerAuthentication {auth} is not in the build")

    for name, lane in sorted(lanes.items()):
        if name not in found_lanes:
            problems.append(f"no overflow lane Deployment {name} ({lane['binary']} with WXPULSE__OVERFLOW__LANE=overflow)")
    with_lane = {lane["binary"] for lane in lanes.values()}
    for binary in sorted(with_lane - diverting):
        problems.append(f"Deployment {binary}: its stream has an overflow lane but it does not divert "
                        f"(WXPULSE__OVERFLOW__ENABLED=\"true\" in its env)")
    for binary in sorted(diverting - with_lane):
        problems.append(f"Deployment {binary}: diverts hot keys (WXPULSE__OVERFLOW__ENABLED) but its stream has no "
                        f"overflow lane in docs/CONTRACT.md")

    check_mirror(by_kind, configmaps, problems)
    missing = set(services) - found_binaries
    if missing:
        problems.append(f"no Deployment for {sorted(missing)}")
    jobs = by_kind.get("Job", [])
    commands = [" ".join(c["command"]) for j in jobs
                for c in j["spec"]["template"]["spec"].get("initContainers", []) + j["spec"]["template"]["spec"]["containers"]]
    for needed in ("migrate", "topics create"):
        if not any(cmd.startswith("wxpulse") and cmd.endswith(needed) for cmd in commands):
            problems.append(f"no Job runs `wxpulse {needed}`")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="rendered manifests (multi-document YAML), - for stdin")
    parser.add_argument("--partitions", type=int, default=12,
                        help="partitions of each interaction topic (wxpulse topics create)")
    args = parser.parse_args()
    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    problems = check(docs, args.partitions)
    for p in problems:
        print(f"{args.file}: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.file}: {len(docs)} objects consistent with docs/CONTRACT.md")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
