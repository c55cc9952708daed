# Triage: build, test (unit + e2e on real containerd), bench, demo.
SHELL     := /bin/bash
GO        ?= /usr/local/go/bin/go
export PATH := $(dir $(GO)):$(PATH)
export GOFLAGS ?= -buildvcs=false
export GOTOOLCHAIN ?= local
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN       := $(CURDIR)/bin
LDFLAGS   := -s -w -X github.com/triage-runtime/triage/shim.Version=$(VERSION) -X github.com/triage-runtime/triage/cli.Version=$(VERSION)
E2E_FLAGS ?= -count=1 -p 1 -timeout 45m

.PHONY: all build test unit e2e bench demo lint clean
all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/containerd-shim-triage-v2 ./cmd/containerd-shim-triage-v2
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/triage-shimd ./cmd/triage-shimd
	CGO_ENABLED=0 $(GO) build -trimpath -tags no_grpc -ldflags '$(LDFLAGS)' -o $(BIN)/triage-router ./cmd/triage-router
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/triage ./cmd/triage

# test: everything CI runs — unit tests, the e2e suites on real containerd 1.6 and 2.x, then
# critest (the CRI validation suite) on the triage handler beside runc.
test: unit e2e critest

unit:
	$(GO) test -count=1 ./...

e2e: build e2e-setup
	TRIAGE_BIN=$(BIN) $(GO) test -tags e2e $(E2E_FLAGS) -v ./e2e/...

# bench: paired, interleaved runs against the delegates' own shims, then the classifier,
# policy-load and hardening micro-benchmarks; writes bench/RESULTS.md.
MICROBENCH := $(GO) test -run '^$$' -bench . -benchmem -count 3 ./classifier ./hardening
bench: build e2e-setup
	TRIAGE_BIN=$(BIN) $(GO) run ./bench -out bench/RESULTS.md
	{ echo; echo '## Classifier, policy load and hardening'; echo; \
	  echo 'Targets: classify p99 ≤ 50 µs at 100 rules; policy load + compile ≤ 5 ms at 100 rules.'; \
	  echo "Command: \`$(MICROBENCH)\`"; echo; echo '```'; \
	  $(MICROBENCH) | grep -E '^Benchmark'; echo '```'; } >> bench/RESULTS.md

# demo: a private containerd, workloads routed to tiers, the decisions printed.
demo: build e2e-setup
	TRIAGE_BIN=$(BIN) $(GO) run ./e2e/demo

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...

clean:
	rm -rf $(BIN)

include e2e/e2e.mk
