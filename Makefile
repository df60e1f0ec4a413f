# callqueue developer entry points. `make` (or `make help`) lists them.
#
# Knobs (environment or command line):
#   DATABASE_URL          use this Postgres instead of the throwaway local cluster (scripts/pg.sh)
#   GOTESTFLAGS           extra `go test` flags for `make test`, e.g. GOTESTFLAGS='-run TestWebhook -v'
#   FUZZTIME              time per fuzz target for `make fuzz` (default 20s)
#   FUZZPKGS              packages `make fuzz` looks for Fuzz* targets in
#   FUZZ_REQUESTS         requests of the OpenAPI-driven fuzz test in `make fuzz` (default 20000; `make test` sends 700)
#   FUZZ_SEED             its seed (default: a random one, printed)
#   SOAK_SEEDS            seeds for `make soak` (default: 4 random ones, printed)
#   SOAK_STEPS            schedule steps per seed for `make soak` (default 400; `make test` runs 40)
#   GOLANGCI_LINT_VERSION the golangci-lint v2 release `make lint` installs into ./bin when needed

SHELL := bash
# Fail recipes on the first error, including inside pipelines (`pg.sh start | tail -1`).
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GOLANGCI_LINT_VERSION ?= v2.15.0
FUZZTIME ?= 20s
FUZZ_REQUESTS ?= 20000
FUZZ_SEED ?=
# SCREENSHOT_DIR is where make screenshots writes the console's pictures (docs/console.md).
SCREENSHOT_DIR ?= docs
# Packages that read untrusted input (webhook bodies, config, OpenAPI documents).
FUZZPKGS ?= ./webhooks/... ./api/... ./config/... ./phone/...
SOAK_STEPS ?= 400
SOAK_SEEDS ?=
export GOTESTFLAGS

BIN := bin/callqueue
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Sets $$lint to a usable golangci-lint v2: ./bin's pinned one, else one on PATH that is v2 and
# built with a Go at least as new as go.mod's (older builds refuse to lint newer code), else it
# installs the pinned version into ./bin.
define resolve_golangci_lint
lint=""; \
want="$(GOLANGCI_LINT_VERSION:v%=%)"; \
if [ -x bin/golangci-lint ] && bin/golangci-lint version 2>/dev/null | grep "version $$want " >/dev/null; then \
	lint=bin/golangci-lint; \
elif command -v golangci-lint >/dev/null 2>&1; then \
	v="$$(golangci-lint version 2>/dev/null || true)"; \
	built="$$(sed -nE 's/.*built with go([0-9]+\.[0-9]+).*/\1/p' <<<"$$v")"; \
	need="$$(sed -nE 's/^go ([0-9]+\.[0-9]+).*/\1/p' go.mod)"; \
	if grep -Eq 'version v?2\.' <<<"$$v" && [ -n "$$built" ] && \
		[ "$$(printf '%s\n%s\n' "$$need" "$$built" | sort -V | head -n1)" = "$$need" ]; then \
		lint=golangci-lint; \
	fi; \
fi; \
if [ -z "$$lint" ]; then \
	echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into ./bin (one time)" >&2; \
	GOBIN="$(CURDIR)/bin" go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	lint=bin/golangci-lint; \
fi
endef

.PHONY: help build run test soak bench lint fuzz fmt vet tidy dashboards screenshots pg-start pg-stop clean distclean

help: ## List the targets
	@echo "usage: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/callqueue (version and commit from git)
	go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/callqueue

run: build ## Run the whole service locally with a demo integration (local Postgres, embedded NATS)
	scripts/run.sh

test: ## Run all tests with -race against Postgres (GOTESTFLAGS for extra flags)
	scripts/test.sh

soak: ## Run the model-based soak test (service/soak_test.go) long, once per seed (SOAK_SEEDS, SOAK_STEPS)
	@DATABASE_URL="$$(scripts/pg.sh start | tail -n1)"; export DATABASE_URL; \
	seeds="$(SOAK_SEEDS)"; \
	if [ -z "$$seeds" ]; then seeds="$$RANDOM$$RANDOM $$RANDOM$$RANDOM $$RANDOM$$RANDOM $$RANDOM$$RANDOM"; fi; \
	for seed in $$seeds; do \
		echo "==> soak seed $$seed, $(SOAK_STEPS) steps (replay: make soak SOAK_SEEDS=$$seed SOAK_STEPS=$(SOAK_STEPS))"; \
		CALLQUEUE_SOAK_SEED=$$seed CALLQUEUE_SOAK_STEPS=$(SOAK_STEPS) \
			go test -race -count=1 -timeout 2h -run '^TestSoak$$' -v ./service/ | grep -v 'writer.go:'; \
	done

bench: ## Run the load benchmark (cmd/callqueue-bench), then its peers (bench/peers) and the ratios
	scripts/bench.sh

lint: ## Run golangci-lint v2 (installs the pinned version into ./bin if needed)
	@$(resolve_golangci_lint); \
	echo "$$lint run ./..."; \
	"$$lint" run ./...

fuzz: ## Run every Fuzz* target in FUZZPKGS for FUZZTIME each, then the OpenAPI-driven fuzz test long (FUZZ_REQUESTS)
	@# Postgres too: a package's TestMain may need it even when its fuzz targets do not.
	@DATABASE_URL="$$(scripts/pg.sh start | tail -n1)"; export DATABASE_URL; \
	n=0; \
	for pkg in $$(go list $(FUZZPKGS)); do \
		for f in $$(go test -list '^Fuzz' "$$pkg" | grep '^Fuzz' || true); do \
			echo "==> $$pkg $$f ($(FUZZTIME))"; \
			go test -run '^$$' -fuzz "^$$f\$$" -fuzztime '$(FUZZTIME)' "$$pkg"; \
			n=$$((n + 1)); \
		done; \
	done; \
	echo "fuzzed $$n target(s)"; \
	seed="$(FUZZ_SEED)"; seed="$${seed:-$$RANDOM$$RANDOM}"; \
	echo "==> ./service TestOpenAPIFuzz, seed $$seed, $(FUZZ_REQUESTS) requests (replay: make fuzz FUZZ_SEED=$$seed)"; \
	CALLQUEUE_FUZZ_SEED=$$seed CALLQUEUE_FUZZ_REQUESTS=$(FUZZ_REQUESTS) \
		go test -race -count=1 -timeout 1h -run '^TestOpenAPIFuzz$$' ./service/ | grep -v 'writer.go:'

fmt: ## Format the code (gofmt -s and goimports, as configured in .golangci.yml)
	@$(resolve_golangci_lint); \
	"$$lint" fmt ./...

vet: ## Run go vet
	go vet ./...

tidy: ## Run go mod tidy
	go mod tidy

dashboards: ## Regenerate deploy/grafana/dashboards/*.json from deploy/grafana/*.go
	go run ./deploy/grafana/generate

screenshots: ## Remake docs/console-calls.png and docs/console-charts.png (docs/console.md) from the console's browser tests
	CALLQUEUE_SCREENSHOT_DIR="$(abspath $(SCREENSHOT_DIR))" TESTPKGS=./web/admin GOTESTFLAGS='-run ^(TestConsoleJourney|TestConsoleCharts)$$' scripts/test.sh

pg-start: ## Start the throwaway local Postgres (data/pg) and print its URL
	scripts/pg.sh start

pg-stop: ## Stop the throwaway local Postgres, and any whose checkout was deleted
	scripts/pg.sh stop

clean: ## Remove bin/; stop local Postgres clusters whose checkout was deleted
	rm -rf bin/
	scripts/pg.sh reap

distclean: clean ## Remove bin/, stop the local Postgres and remove data/
	scripts/pg.sh stop
	rm -rf data/
