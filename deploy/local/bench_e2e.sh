#!/usr/bin/env bash
# End-to-end benchmark on a private local stack (options: bench_e2e.py --help); installs the venv if missing.
# The plain-reader comparison (bench_e2e_helpers.py) needs confluent-kafka, which the stack
# itself does not: it is added to the venv here, only for the benchmark.
# --storage postgres installs what that storage needs (stack.sh install), and only then.
D="$(cd "$(dirname "$0")" && pwd)"
storage=sqlite prev=
for a in "$@"; do
  [ "$prev" = --storage ] && storage="$a"
  case "$a" in --storage=*) storage="${a#--storage=}" ;; esac
  prev="$a"
done
WXPULSE_KAFKA_STORAGE="$storage" "$D/stack.sh" install >&2 || exit 1
"$D/.venv/bin/python" -c "import confluent_kafka" 2>/dev/null ||
  "$D/.venv/bin/python" -m pip install --disable-pip-version-check -q "confluent-kafka==2.*" >&2 || exit 1
exec "$D/.venv/bin/python" "$D/bench_e2e.py" "$@"
