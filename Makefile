# agaobs — see README.md. `make run` starts the demo, `make test` runs every test.
SHELL    := /bin/bash
GO       ?= go
PYTHON   ?= python3
# The release (one source: VERSION; the image tag in deploy/ and the Python
# client's version must equal it, tests/deploy checks); the commit is REVISION.
VERSION  ?= $(shell cat VERSION 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
# The build date honours SOURCE_DATE_EPOCH (reproducible builds).
BUILD_DATE ?= $(shell date -u -d "@$${SOURCE_DATE_EPOCH:-$$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
PV       := github.com/prometheus/common/version
LDFLAGS  := -X $(PV).Version=$(VERSION) -X $(PV).Revision=$(REVISION) -X $(PV).Branch=$(BRANCH) -X $(PV).BuildDate=$(BUILD_DATE)
BINDIR   ?= bin
MANDIR   ?= $(BINDIR)/man
FUZZTIME ?= 10s
# go-nvml's header marks many functions deprecated; cgo would print each warning
# on every build of the GPU package.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations
DEMO_DIR ?= /dev/shm/agaobs-demo
# The demo reads the GPU only where the NVIDIA driver's library is installed,
# so a laptop's /health is not unhealthy for want of a GPU.
DEMO_GPU ?= $(shell ldconfig -p 2>/dev/null | grep -q libnvidia-ml.so && echo true || echo false)

# Fuzz targets: package:target.
FUZZ_TARGETS := \
	./internal/shm:FuzzParseHeader \
	./internal/shm:FuzzPoll \
	./internal/shm:FuzzDecodeRetrieval \
	./internal/pipeline:FuzzDecode \
	./internal/config:FuzzLoadFile \
	./internal/pipeline:FuzzDecodeAudit \
	./internal/pipeline:FuzzDecodeAuditOnePass \
	./internal/audit:FuzzSealEncoding \
	./internal/eventlog:FuzzLogLine \
	./internal/eventlog:FuzzLinesMatchReference \
	./internal/pyfmt:FuzzAppendRepr \
	./internal/pyfmt:FuzzAppendFloat \
	./internal/alerting/anomaly:FuzzRestore \
	./tests/reliability:FuzzLiveRing

.PHONY: vendor-uplot all build man bpf run test test-go test-reliability test-fleet test-python test-python-install test-c test-fuzz vet fmt-check e2e perf bench bench-go bench-agent bench-python bench-c bench-bpf clean otelcol test-otelcol python-dashboard seed-tests

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BINDIR)/agaobs-agent ./cmd/agaobs-agent
	$(GO) build -o $(BINDIR)/agaobs-bench ./cmd/agaobs-bench

# Man pages, one per command (section 1), from the CLI's own definitions:
# man -l $(MANDIR)/man1/agaobs-agent.1
man: build
	rm -rf $(MANDIR)/man1
	$(BINDIR)/agaobs-agent man $(MANDIR)/man1

# uPlot, vendored into the live view from the npm registry at the version and
# integrity pinned in the script; `scripts/vendor-uplot.sh --check` compares.
vendor-uplot:
	scripts/vendor-uplot.sh

# The agent in demo mode with synthetic producers (real child processes). The
# terminal keeps the live table, alerts and producer lifecycle lines; the event
# log (every forward, retrieval and audit event) goes to .demo/events.log.
run: build
	bin/agaobs-agent demo --ring-dir $(DEMO_DIR) --state-path .demo/agaobs_state.db --audit-storage-path .demo/aga_audit.db \
		--log-file .demo/events.log --log-stderr=false --gpu-enabled=$(DEMO_GPU)

# Every part prints its wall time; the README's development section keeps the table.
test: fmt-check vet
	@t=$$(date +%s); $(MAKE) --no-print-directory test-otelcol && echo "== test-otelcol: $$(( $$(date +%s) - t ))s"
	@t=$$(date +%s); $(MAKE) --no-print-directory test-go && echo "== test-go: $$(( $$(date +%s) - t ))s"
	@t=$$(date +%s); $(MAKE) --no-print-directory test-reliability && echo "== test-reliability: $$(( $$(date +%s) - t ))s"
	@t=$$(date +%s); $(MAKE) --no-print-directory test-fleet && echo "== test-fleet: $$(( $$(date +%s) - t ))s"
	@t=$$(date +%s); $(MAKE) --no-print-directory test-python && echo "== test-python: $$(( $$(date +%s) - t ))s"
	@t=$$(date +%s); $(MAKE) --no-print-directory test-c && echo "== test-c: $$(( $$(date +%s) - t ))s"
	@t=$$(date +%s); $(MAKE) --no-print-directory test-fuzz && echo "== test-fuzz: $$(( $$(date +%s) - t ))s"

fmt-check:
	@out=$$(gofmt -l cmd internal tests); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	scripts/bpf-check.sh
	# Without cgo the agent still builds (GPU reported unavailable).
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/agaobs-agent

# tests/reliability runs on its own (test-reliability): its overload and soak
# assertions measure rates and latencies, which other packages' tests running
# beside it, or the race detector, would distort.
test-go:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /tests/reliability -e /tests/fleet)

# A fleet on one machine (tests/fleet): N agents, one Prometheus, one
# Alertmanager. Its assertions are timing windows, so it runs on its own,
# without -race; `make e2e` runs it with 16 nodes.
test-fleet:
	$(GO) test -count=1 -timeout 15m ./tests/fleet

# The fault, overload and soak suite, shortened (RELIABILITY.md): at least 10
# producer kills, 3 agent restarts, a 1-minute soak and every fault once.
test-reliability:
	$(GO) test -count=1 -timeout 20m ./tests/reliability

# The same suite at full size (100 producer kills, 20 agent restarts, a
# 10-minute soak), then the side-by-side performance run. Rows for
# RELIABILITY.md go to .e2e/reliability.jsonl and are printed as a table.
e2e: build
	@mkdir -p .e2e && rm -f .e2e/reliability.jsonl
	set -o pipefail; AGAOBS_E2E_FULL=1 AGAOBS_RELIABILITY_REPORT=$(CURDIR)/.e2e/reliability.jsonl \
		$(GO) test -count=1 -timeout 60m -v ./tests/reliability 2>&1 | tee .e2e/reliability.log
	$(PYTHON) scripts/reliability-table.py .e2e/reliability.jsonl
	set -o pipefail; AGAOBS_FLEET_NODES=16 AGAOBS_FLEET_REPORT=$(CURDIR)/.e2e/fleet.json $(GO) test -count=1 -timeout 30m -v ./tests/fleet 2>&1 | tee .e2e/fleet.log
	$(MAKE) --no-print-directory perf

# Every performance goal against its measurement from one run on this
# machine (~1.5 min with a warm build cache): a markdown table to stdout and
# to .e2e/perf-report.md (BENCHMARKS.md, "Side by side").
# `make perf BASE=<git ref>`: that ref vs this working tree instead, interleaved (scripts/perf-compare.sh, .e2e/perf-compare.md).
perf: python-native
	@mkdir -p .e2e
ifneq ($(BASE),)
	GO=$(GO) PYTHON=$(PYTHON) scripts/perf-compare.sh "$(BASE)" $(CURDIR)/.e2e/perf-compare.md
else
	GO=$(GO) PYTHON=$(PYTHON) scripts/perf-report.sh $(CURDIR)/.e2e/perf-report.md
endif

# The OpenTelemetry Collector that the agent's OTLP tests send to
# (tests/otelcol): its own Go module, so the agent's module does not pull the
# collector's dependencies and `go list ./...` skips it; hence its own steps.
otelcol:
	cd tests/otelcol && $(GO) build -o $(abspath $(BINDIR))/agaobs-testcol .

test-otelcol:
	cd tests/otelcol && $(GO) vet ./... && $(GO) test -count=1 ./...
	cd tests/otelcol && $(GO) build -o $(abspath $(BINDIR))/agaobs-testcol .

# The Python suite includes an offline `pip install` into a venv of the machine's Python.
# The node dashboard the Python client ships for the seed's generate_dashboard
# (clients/python/aga_observability/_data/dashboard.json, prefix placeholder
# AGAOBS_PREFIX); test-go fails when it differs from the generator.
python-dashboard:
	$(GO) test ./internal/dashboard -run TestPythonDashboardCopy -update

# The seed package's own test suite against the Python client, per module
# (docs/seed-compatibility.md §12.3):
#   make seed-tests SEED=<checkout of LucasMa2025/aga-plugin-system>
seed-tests:
	scripts/seed-tests.sh "$(SEED)"

# The Python client's optional C fast path (clients/python/native/*.c), built in
# place into clients/python/aga_observability/ (<name><EXT_SUFFIX>, git-ignored)
# so that PYTHONPATH=clients/python and editable installs use it; the same
# recipe as the platform wheel (agaobs_build.build_extension). Needs a C
# compiler and the interpreter's headers.
.PHONY: python-native
python-native:
	$(PYTHON) clients/python/_build/agaobs_build.py build-inplace

# The native tests fail (not skip) without the extension; the suite runs the
# C fast path by default and the pure-Python path in its explicit twins.
test-python: python-native
	cd clients/python && AGAOBS_TEST_REQUIRE_NATIVE=1 $(PYTHON) -m unittest discover -s tests

test-c:
	$(MAKE) -C clients/c test

# Go's fuzz coordinator can end a clean run with "context deadline
# exceeded" when the fuzz time runs out while a worker is busy (no failing
# input written): that run is repeated once; a real finding never is.
test-fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		for try in 1 2; do \
			if $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg > /tmp/agaobs-fuzz.log 2>&1; then break; fi; \
			if [ $$try = 1 ] && grep -q 'context deadline exceeded' /tmp/agaobs-fuzz.log && ! grep -q 'Failing input written' /tmp/agaobs-fuzz.log; then \
				echo "  (fuzz time ran out inside a worker; repeating once)"; continue; fi; \
			cat /tmp/agaobs-fuzz.log; exit 1; \
		done; \
	done

# Regenerates the committed BPF object and Go bindings from bpf/ with
# Debian 12's clang-14 (pinned: another version changes the bytes).
bpf:
	cd internal/probes && $(GO) generate ./gen.go

bench: build bench-go bench-agent bench-python bench-c bench-bpf

bench-go:
	$(GO) test -run '^$$' -bench 'Drain|Emit' -benchmem -benchtime 2s ./internal/shm
	$(GO) test -run '^$$' -bench 'Pipeline' -benchtime 6000000x ./internal/agent
	$(GO) test -run '^$$' -bench 'Scrape' -benchtime 20x ./internal/metrics
	$(GO) test -run '^$$' -bench 'ExporterWrite' -benchtime 2s ./internal/metrics
	$(GO) test -run '^$$' -bench 'Eval|EngineWrite' ./internal/alerting
	$(GO) test -run '^$$' -bench 'WriterDurable' -benchtime 300000x ./internal/audit

bench-agent: build
	bin/agaobs-bench --duration 10s --scenarios idle,wake,20,10k,100k,1m,audit

# Python emit cost with a running agent draining the ring: the C fast path
# (client_ns, added_ns) and the pure-Python path (pure_*), interleaved.
bench-python: build python-native
	@dir=$$(mktemp -d /dev/shm/agaobs-pybench-XXXX); \
	bin/agaobs-agent run --ring-dir $$dir --state-path '' --admin-listen-address '' --agent-log-level error & ag=$$!; \
	sleep 0.5; \
	PYTHONPATH=clients/python AGAOBS_RING_DIR=$$dir $(PYTHON) clients/python/bench/emit_bench.py --events 200000 --ring-dir $$dir; \
	kill $$ag; wait $$ag; rm -rf $$dir

bench-c:
	$(MAKE) -C clients/c bench

# eBPF (root): cost per probe hit, the default probe set's overhead on a
# Python producer, and the forward marker's cost per forward.
bench-bpf:
	$(GO) test -run '^$$' -bench ProbeHit -benchtime 3x ./internal/probes
	$(GO) test -run '^$$' -bench 'BPFWorkloadOverhead|ForwardMarkerCost' -benchtime 1x -count 2 ./tests/e2e
	$(PYTHON) clients/python/bench/marker_bench.py

clean:
	rm -rf bin .demo .e2e
	$(MAKE) -C clients/c clean
