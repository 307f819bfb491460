#!/usr/bin/env bash
# End-to-end benchmark on a private local stack (options: bench_e2e.py --help); installs the venv if missing.
D="$(cd "$(dirname "$0")" && pwd)" && "$D/stack.sh" install >&2 && exec "$D/.venv/bin/python" "$D/bench_e2e.py" "$@"
