# edgefaas: `make help` lists the targets.
SHELL   := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/edgefaas/edgefaas/api.Version=$(VERSION)
GO      ?= go
STATE   ?= $(CURDIR)/.state
LISTEN  ?= :8080

.PHONY: help build test run bench lint examples clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/edgefaasd and bin/edgefaas
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

examples: build ## build the example function archives into build/
	./examples/build.sh

test: ## run every test, as CI does (root: real sandboxes and cgroups)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

run: build examples ## start edgefaasd in ./.state, deploy the examples, print the curl line
	./examples/run.sh "$(STATE)" "$(LISTEN)"

bench: build ## cold invoke in exec and http mode against `runc run`, as ratios
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./sandbox/ ./metering/ ./integration/ | tee bench.txt

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...

clean: ## remove build outputs (not the state directory)
	rm -rf bin build
