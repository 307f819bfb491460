# The two commands a new machine needs (README): `make demo` and `make test`.
# Everything they need is installed by deploy/local/stack.sh install (tansu, chdb venv).

CARGO ?= cargo
E2E_THREADS ?= 1

.PHONY: demo test chaos unit e2e adapter-test stack-test lint bench bench-memory bench-dims bench-gateway bench-e2e bench-soak bench-attribution deploy-check up down

## Bring up the local stack, migrate, start the five services, produce demo data, print results.
demo:
	deploy/local/demo.sh

## Every test: formatting and lints, unit + property tests, the adapter's and stack's own
## tests, the deployment checks, then the end-to-end tests against Tansu and chdb.
test: lint unit adapter-test stack-test deploy-check e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash deploy/ops/check-deploy.sh --lint
	python3 deploy/ops/check_structure.py

unit:
	$(CARGO) build --workspace --bins
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --exclude wxpulse-e2e; \
	else \
		$(CARGO) test --workspace --exclude wxpulse-e2e; \
	fi

adapter-test:
	deploy/local/stack.sh install
	deploy/local/.venv/bin/python -m unittest deploy/local/test_chdb_http.py

stack-test:
	deploy/local/test_stack.sh

deploy-check:
	bash deploy/ops/check-deploy.sh

e2e:
	$(CARGO) build --workspace --bins
	rm -rf "$${TMPDIR:-/tmp}/wxpulse-e2e-logs"
	$(CARGO) test -p wxpulse-e2e --test e2e -- --test-threads=$(E2E_THREADS)

## Chaos at scale, not part of `make test` (which runs the same test with 100,000 events):
## 1,000,000 generated events with 1 % poison through SIGKILLs, an adapter crash, a broker
## restart, a failing rollup view and a 1 -> 3 -> 2 rebalance; prints the summary table.
CHAOS_EVENTS ?= 1000000
chaos:
	$(CARGO) build --workspace --bins
	WXPULSE_CHAOS_EVENTS=$(CHAOS_EVENTS) $(CARGO) test -p wxpulse-e2e --test e2e chaos:: -- --nocapture --test-threads=1

## Hot-path benchmark (no I/O) and the end-to-end throughput/latency benchmark.
bench:
	$(CARGO) bench -p wxpulse-e2e --bench hot_path

## Memory of the per-fan, per-id and per-wait state, per million entries (README "Measured").
## The dev profile: allocation sizes do not depend on optimisation, and it skips a release build.
bench-memory:
	$(CARGO) bench --profile dev -p wxpulse-e2e --bench state_memory

## Start-up load of 1,000,000 fan profiles: broker floor, topic only, mirror snapshot + tail.
bench-dims:
	deploy/local/stack.sh install
	$(CARGO) build --workspace --bins --release
	$(CARGO) bench -p wxpulse-e2e --bench dimension_load

## Callbacks/s and answer times of wxpulse-gateway (safe mode, through the local broker).
bench-gateway:
	deploy/local/stack.sh install
	$(CARGO) build --workspace --bins --release
	$(CARGO) bench -p wxpulse-e2e --bench gateway

## Cost of the conversion views (attribution at read time) on the real engine, printed.
bench-attribution:
	deploy/local/stack.sh install
	deploy/local/.venv/bin/python deploy/local/bench_attribution.py

## End to end, five services, with the plain-reader comparison and the direct-insert floor
## (README "Measured"), e.g. make bench-e2e BENCH_E2E_ARGS='--events 200000 --rate 5000'.
bench-e2e:
	$(CARGO) build --release --workspace --bins
	deploy/local/bench_e2e.sh $(BENCH_E2E_ARGS)

## Soak (README "Measured"): 10,000,000 live events over 1,000,000 fans through the five
## services, RSS and state-map sizes every minute, e.g. BENCH_SOAK_ARGS='--events 1000000'.
bench-soak:
	$(CARGO) build --release --workspace --bins
	deploy/local/bench_soak.sh $(BENCH_SOAK_ARGS)

up:
	deploy/local/stack.sh up
down:
	deploy/local/demo.sh stop
