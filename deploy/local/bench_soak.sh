#!/usr/bin/env bash
# Soak of the five services on a private local stack (options: bench_soak.py --help): RSS and
# the state maps' sizes every minute over millions of live events, exactly-once at the end.
# Installs the stack's venv if missing; needs the release binaries (make bench-soak builds them).
D="$(cd "$(dirname "$0")" && pwd)" && "$D/stack.sh" install >&2 || exit 1
exec "$D/.venv/bin/python" "$D/bench_soak.py" "$@"
