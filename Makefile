# lojal. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## install PostgreSQL, Chromium (for the browser test), promtool (for the alert rules) and the pinned Temporal CLI if missing
	@.ci/tools

.PHONY: build
build: ## build bin/lojal
	$(GO) build -o bin/lojal ./cmd/lojal

.PHONY: dev
dev: build ## run lojal locally: Postgres, Temporal, SMTP catcher, worker, API, demo customers and journeys
	@.ci/tools --no-browser
	bin/lojal dev

.PHONY: test
test: tools ## run every test (unit, Postgres, end to end on the Temporal dev server)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

.PHONY: test-faults
test-faults: tools ## run the fault tests (worker kill -9, Postgres restart, SMTP outage, replica failover, a hung sweeper, redeploy under 200 runs)
	$(GO) test -count=1 -timeout 30m -tags faults -run Fault -v ./internal/faults/ 2>&1 | tee faults.out; test $${PIPESTATUS[0]} -eq 0
	@grep '^FAULT' faults.out

.PHONY: bench
bench: build ## run every benchmark; print medians and ratios against baselines measured in the same run
	@.ci/tools --no-browser
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/bench/
	bin/lojal bench

FUZZTIME ?= 20s

.PHONY: fuzz
fuzz: ## fuzz hostile input: journeys, policy, API JSON bodies, bounce reports, signed links and tracked-link tokens (FUZZTIME each, 20s unless set)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/journey/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSchemaAndRules$$' -fuzztime $(FUZZTIME) ./internal/journey/
	$(GO) test -run '^$$' -fuzz '^FuzzDecideStream$$' -fuzztime $(FUZZTIME) ./internal/policy/
	$(GO) test -run '^$$' -fuzz '^FuzzAPI$$' -fuzztime $(FUZZTIME) -parallel 1 ./internal/api/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/bounce/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/links/
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyClick$$' -fuzztime $(FUZZTIME) ./internal/links/

.PHONY: k8s
k8s: build ## regenerate deploy/k8s/journeys.yaml (the journeys ConfigMap) from journeys/
	bin/lojal journeys bundle journeys > deploy/k8s/journeys.yaml

.PHONY: lint
lint: ## go vet, gofmt, workflowcheck and promtool (the alert rules: checked and unit-tested)
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) run go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0 -config workflows/workflowcheck.config.yaml ./workflows/...
	@command -v promtool >/dev/null || { echo "promtool is missing: run make tools (it installs Debian's prometheus package)"; exit 1; }
	cd deploy/prometheus && promtool check rules lojal-alerts.yaml && promtool test rules lojal-alerts.test.yaml
