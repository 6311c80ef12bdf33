# fnhost — make help lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Narrow runs: make test-unit T=TestName PKG=./internal/...
T         ?=
PKG       ?= ./...
RUNFLAG   := $(if $(T),-run '$(T)',)
# golangci-lint (make lint) is built from source with this Go into bin/tools, pinned to a release
# built for Go 1.26; a binary of another version there is replaced.
GOLANGCI_LINT_VERSION := v2.15.0
TOOLS     := $(abspath $(BIN)/tools)
GOLANGCI_LINT := $(TOOLS)/golangci-lint
# PULSAR_VERSION, PULSAR_CACHE and the ports are read by scripts/pulsar from the environment.
export PULSAR_VERSION

.PHONY: help build plugins deploy deploy-all undeploy test test-unit test-integration test-disruptive lint fmt generate \
        pulsar-up pulsar-up-fresh pulsar-down pulsar-status pulsar-logs pulsar-reset run clean bench

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

build: ## build the fnhost CLI into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fnhost ./cmd/fnhost

plugins: ## build every example function into bin/functions/
	@for d in functions/*/; do n=$$(basename $$d); [ $$n = pf ] && continue; \
	  echo "building $$n"; CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/functions/$$n ./functions/$$n; done

deploy: ## build functions/$(FN) and create or update it in Pulsar Functions with pulsar-admin
	@test -n "$(FN)" || { echo "usage: make deploy FN=echo"; exit 2; }
	scripts/deploy $(FN)

deploy-all: ## deploy every manifest in manifests/functions
	scripts/deploy --all

undeploy: ## delete the deployed function $(FN)
	@test -n "$(FN)" || { echo "usage: make undeploy FN=echo"; exit 2; }
	scripts/deploy --delete $(FN)

generate: ## regenerate the protobuf code (protoc + the pinned go tools)
	$(GO) generate ./...

# make run PULSAR=1 starts the standalone and runs every function through real topics.
PULSAR    ?=
run: build ## run the main job: fnhost dev (runtime + trigger; embedded, no Pulsar needed; PULSAR=1: through Pulsar)
	@if [ -n "$(PULSAR)" ]; then scripts/pulsar start && $(BIN)/fnhost dev --pulsar-url pulsar://127.0.0.1:6650; \
	else $(BIN)/fnhost dev; fi

test: lint test-unit pulsar-up-fresh test-integration test-disruptive ## everything: lint, unit, then integration against a real Pulsar
	@echo "make test: all suites passed"

test-unit: ## unit tests with the race detector; no Pulsar needed
	$(GO) test -race -count=1 -timeout 10m $(RUNFLAG) $(PKG)

test-integration: ## integration tests against the running standalone (make pulsar-up first)
	$(GO) test -tags=integration -count=1 -timeout 30m $(RUNFLAG) $(PKG)

test-disruptive: ## tests that restart the standalone; run alone, one package at a time
	$(GO) test -tags=integration,disruptive -run '$(or $(T),Disruptive|AcrossRestart)' -p 1 -count=1 -timeout 20m $(PKG)

lint: $(GOLANGCI_LINT) ## gofmt, go vet and golangci-lint (all build tags), the import floors, shell syntax of the scripts
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags=integration,disruptive ./...
	$(GOLANGCI_LINT) run --build-tags=integration,disruptive ./...
	$(GO) test -count=1 -timeout 5m ./internal/floors
	bash -n scripts/pulsar scripts/pulsar-admin scripts/deploy scripts/lib/pulsar-env.sh .ci/run

# A phony prerequisite: the recipe runs every time and rebuilds only when the version differs.
.PHONY: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	@if [ "$$($@ version --short 2>/dev/null)" != "$(GOLANGCI_LINT_VERSION:v%=%)" ]; then \
	  echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(TOOLS)"; rm -f $@; \
	  GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

bench: pulsar-up ## fnhost vs same-run baselines: Pulsar throughput, plugin invoke, memory (BENCH_N, BENCH_DURATION)
	$(GO) run ./cmd/fnhost-bench

pulsar-up: ## provision (first time) and start the Pulsar standalone with its functions worker
	scripts/pulsar start

pulsar-up-fresh: ## like pulsar-up, but a standalone it has to start begins on empty data (make test uses it)
	scripts/pulsar start --fresh

pulsar-down: ## stop the standalone
	scripts/pulsar stop

pulsar-status: ## is the standalone running
	scripts/pulsar status

pulsar-logs: ## the last lines of the standalone's log
	scripts/pulsar logs

pulsar-reset: ## stop the standalone and wipe its data
	scripts/pulsar reset

clean: ## remove build output (not the Pulsar cache)
	rm -rf $(BIN)
