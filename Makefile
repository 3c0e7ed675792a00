# edgefaas: `make help` lists the targets.
SHELL   := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/edgefaas/edgefaas/api.Version=$(VERSION)
GO      ?= go
STATE   ?= $(CURDIR)/.state
LISTEN  ?= :8080

.PHONY: help build test run bench lint examples clean cross test-arm deb

# Cross builds: Debian's cross compilers for cgo (go-sqlite3, nsenter).
CROSS_DEBS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
QEMU_DEBS  := qemu-user-static
DEB_VERSION = $(shell packaging/debversion.sh '$(VERSION)')

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/edgefaasd, bin/edgefaas and bin/edgecloud (every ./cmd/...)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

examples: build ## build the example function archives into build/
	./examples/build.sh

test: ## run every test, as CI does (root: real sandboxes and cgroups), then test-arm
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) test-arm

cross: ## dist/{edgefaasd,edgefaas}_linux_{arm64,armv7,amd64}: cgo, stripped (installs cross gcc)
	packaging/toolchain.sh $(CROSS_DEBS)
	LDFLAGS='$(LDFLAGS)' GO='$(GO)' packaging/cross.sh amd64 arm64 armv7

test-arm: cross ## run the unit tests and --version of dist/ for arm64 and armv7 under qemu-user
	packaging/toolchain.sh $(QEMU_DEBS)
	GO='$(GO)' packaging/test-arm.sh '$(VERSION)' arm64 armv7

deb: cross ## dist/edgefaas_VERSION_{arm64,armhf,amd64}.deb with nfpm (units from systemd/)
	packaging/deb.sh '$(DEB_VERSION)' amd64 arm64 armv7

run: build examples ## start edgefaasd in ./.state, deploy the examples, print the curl line
	./examples/run.sh "$(STATE)" "$(LISTEN)"

bench: build cross ## cold/warm invoke, image import, MQTT round trips against baselines; binary sizes and agent RSS against their bars; edgecloud with 10,000 simulated agents
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./sandbox/ ./metering/ ./images/ ./mqtt/ ./integration/ ./controller/ | tee bench.txt

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...

clean: ## remove build outputs (not the state directory)
	rm -rf bin build dist
