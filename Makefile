# sitroom: the two quick-start commands are `make run` and `make test` (README).
SWIFT ?= swift

.PHONY: demo-running run test build deps demo-deps secrets check-config clean bench lint

## run: install what the demo lacks (only that), build, start zoom-sim, sitroomd and sitroom-intake on the bundled
## defaults, feed the samples; refuses to start over a running demo.
run: demo-running demo-deps secrets
	$(SWIFT) build
	scripts/run-demo

# Refuses before anything is installed, generated or built when a demo already runs on this checkout (exit 75).
demo-running:
	@scripts/run-demo --check-only

## test: install what is missing, build everything, run all tests (unit and end-to-end).
test: deps secrets
	$(SWIFT) build
	$(SWIFT) test

## lint: swift-format (part of the Swift toolchain) over Sources, Tests and Package.swift with .swift-format's rules;
## any finding fails (CI runs it before the tests). `swift format format -i -r Sources Tests Package.swift` fixes most.
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

## bench: build release (not timed), then run the benchmark suite on loopback and print its table (docs/performance.md;
## figures); `make bench BENCH_ARGS="--json bench.json"` also writes JSON. Not part of `make test`.
bench: deps secrets
	$(SWIFT) build -c release
	scripts/bench $(BENCH_ARGS)

## build: what the build needs (not the test tools), then the debug build.
build: demo-deps secrets
	$(SWIFT) build

deps:
	scripts/install-deps

demo-deps:
	scripts/install-deps --demo

secrets:
	scripts/gen-secrets

check-config: build
	.build/debug/sitroomd --root . --check-config

clean:
	rm -rf .build
