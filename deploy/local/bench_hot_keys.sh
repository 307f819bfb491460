#!/usr/bin/env bash
# Hot-key overflow lane benchmark on private local stacks (options: bench_hot_keys.py --help):
# per-partition time to ClickHouse and consumer lag, with and without the lane. Installs the
# stack's venv if missing (stack.sh install); needs the release binaries of wxpulse and
# wxpulse-menu-clicks (or --bin-dir target/debug).
D="$(cd "$(dirname "$0")" && pwd)" && "$D/stack.sh" install >&2 || exit 1
exec "$D/.venv/bin/python" "$D/bench_hot_keys.py" "$@"
