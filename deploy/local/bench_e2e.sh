#!/usr/bin/env bash
# End-to-end benchmark on a private local stack (options: bench_e2e.py --help); installs the venv if missing.
# The plain-reader comparison (bench_e2e_helpers.py) needs confluent-kafka, which the stack
# itself does not: it is added to the venv here, only for the benchmark.
D="$(cd "$(dirname "$0")" && pwd)" && "$D/stack.sh" install >&2 || exit 1
"$D/.venv/bin/python" -c "import confluent_kafka" 2>/dev/null ||
  "$D/.venv/bin/python" -m pip install --disable-pip-version-check -q "confluent-kafka==2.*" >&2 || exit 1
exec "$D/.venv/bin/python" "$D/bench_e2e.py" "$@"
