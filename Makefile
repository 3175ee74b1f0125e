# smsflow: the two commands are `make demo` and `make test`. See README.md.

SHELL := /bin/bash
STACK := deploy/local/stack.sh
CARGO ?= cargo

.PHONY: deps build stack-up stack-down stack-status migrate topics demo demo-stop test lint unit bench check-deploy fuzz interop

## System packages the Rust build needs (librdkafka is built from source with TLS and OIDC).
deps:
	@bash deploy/local/deps.sh

build: deps
	$(CARGO) build --workspace --all-targets

stack-up:
	@bash $(STACK) up

stack-down:
	@bash $(STACK) down

stack-status:
	@bash $(STACK) status

migrate: build
	$(CARGO) run -q --bin smsflow -- migrate

topics: build
	$(CARGO) run -q --bin smsflow -- topics

## Bring everything up on a fresh machine, run smsflow on sample traffic, print the read model.
demo: deps stack-up
	@bash deploy/local/demo.sh

demo-stop:
	@bash deploy/local/demo.sh stop

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Other people's code that the tests run against ours: the Java Avro reference implementation
## (Maven Central), fastavro + confluent-kafka, and the OpenAPI checkers (openapi-spec-validator,
## schemathesis, openapi-python-client) from PyPI, each in a cached venv. Tests also fetch on demand.
interop: deps
	@bash tests/interop/java/run.sh -version >/dev/null 2>&1 || bash tests/interop/java/run.sh -version
	@bash tests/interop/python/venv.sh >/dev/null
	@bash tests/interop/python/venv.sh tests/interop/openapi/requirements.txt >/dev/null

## Every test, against the real local stack (started if needed). cargo-nextest runs each test
## as its own process and the test binaries side by side (settings: .config/nextest.toml).
## Tests that stop a shared stack service (Kafka, Cassandra, Redis) are named `*outage*`: they run
## after the rest, one at a time, so that no other test sees the outage.
OUTAGE_TESTS := binary(/outage/)
test: deps stack-up lint check-deploy interop
	$(CARGO) nextest run --workspace --all-targets --profile ci -E 'not ($(OUTAGE_TESTS))'
	$(CARGO) nextest run --workspace --all-targets --profile ci-outage -E '$(OUTAGE_TESTS)'
	$(CARGO) test --workspace --doc

## Benchmarks against ceilings measured in the same run (needs the stack; not part of make test).
## Knobs: RATE, DURATION, STEPS, DRAIN, SUSTAIN (e.g. SUSTAIN=600 for the 10-minute run), PEER=off.
bench: deps stack-up
	-bash loadtest/peers/build-benthos.sh
	bash loadtest/scripts/bench.sh
	bash loadtest/scripts/tracing_overhead.sh 15 32

## Lint and validate deploy/ offline: Dockerfile, Helm chart, operator resources, compose,
## rules and dashboard (tools built or fetched once into ~/.cache/smsflow-deploy).
check-deploy: deps
	bash deploy/check/check.sh

unit: deps
	$(CARGO) test --workspace --lib

## Coverage-guided fuzzing (cargo-fuzz/libFuzzer on stable via RUSTC_BOOTSTRAP=1; not part of
## make test, whose property tests cover the same targets briefly). FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_TARGETS)
