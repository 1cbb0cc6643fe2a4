# Vertigo. The two set-up commands are `make run` and `make test`; both
# install what is missing first (Go comes with the machine; Debian packages
# through apt).
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN := local
BIN := bin
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
SDK_MODULE := github.com/vertigo-autoscaler/vertigo/sdk

BINARIES := $(BIN)/vertigo $(BIN)/vertigo-scaler $(BIN)/vertigo-placement $(BIN)/vertigo-qemu $(BIN)/vertigo-bridge
GUEST := build/guest
GUEST_PG := build/guest-postgres
# Debian packages: QEMU (TCG here) and busybox for the guest image,
# iproute2 for the namespaces the network plugin and tests make, debootstrap
# for the Postgres guest, pgbench (postgresql-client) as its client, and
# chromium for the web page's browser test.
APT_PACKAGES := qemu-system-x86 qemu-utils busybox-static iproute2 debootstrap postgresql-client chromium fonts-dejavu-core

.PHONY: all build run test check-proto proto deps deps-proto guest guest-pg bench clean FORCE

all: build

build: $(BINARIES)

# deps installs the Debian packages that are missing (apt-get update only
# when something is).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# guest builds the guest kernel (from Debian's package, cached under
# ~/.cache/vertigo) and the initramfs with busybox and the agent.
guest: deps
	plugins/hypervisor-qemu/guest/build.sh $(GUEST)

# guest-pg builds the Postgres guest (Debian's PostgreSQL 15 on an ext4 root,
# cached under ~/.cache/vertigo) with the same kernel and initramfs.
guest-pg: guest
	plugins/hypervisor-qemu/guest/build-pg.sh $(GUEST_PG)

# Go decides what is stale; FORCE hands it every build.
$(BIN)/vertigo: FORCE
	$(GO) build -o $@ ./host/cmd/vertigo
$(BIN)/vertigo-scaler: FORCE
	$(GO) build -o $@ ./plugins/scaler
$(BIN)/vertigo-placement: FORCE
	$(GO) build -o $@ ./plugins/placement
$(BIN)/vertigo-qemu: FORCE
	$(GO) build -o $@ ./plugins/hypervisor-qemu
$(BIN)/vertigo-bridge: FORCE
	$(GO) build -o $@ ./plugins/network-bridge

run: build guest guest-pg
	$(BIN)/vertigo validate config.hcl
	$(BIN)/vertigo run -config config.hcl

# Packages that boot QEMU guests run one at a time: in parallel on 2 cores
# the guests starve each other and their CPU pressure is the machine's. The
# end-to-end tests run verbose: they print what they measured.
QEMU_PKGS := ./host/bench ./plugins/hypervisor-qemu/...

test: build guest guest-pg check-proto
	$(GO) vet ./... && (cd sdk && $(GO) vet ./...)
	cd sdk && $(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /host/e2e -e /host/bench -e /plugins/hypervisor-qemu)
	$(GO) test -race -count=1 -p 1 $(QEMU_PKGS)
	$(GO) test -race -count=1 -v ./host/e2e | grep -v -e '^=== ' -e '^\s*$$'; exit $${PIPESTATUS[0]}
	$(BIN)/vertigo validate config.hcl
	$(BIN)/vertigo plugin conformance scaler $(BIN)/vertigo-scaler
	$(BIN)/vertigo plugin conformance placement $(BIN)/vertigo-placement
	$(BIN)/vertigo plugin conformance hypervisor $(BIN)/vertigo-qemu -config plugins/hypervisor-qemu/conformance.hcl
	@# The suite's nodes are namespaces, which outlive the plugin by design.
	$(BIN)/vertigo plugin conformance network $(BIN)/vertigo-bridge -config plugins/network-bridge/conformance.hcl; \
	  rc=$$?; for ns in $$(ip netns list | awk '/^vtconf-/ {print $$1}'); do ip netns del $$ns; done; exit $$rc

bench: build guest
	$(BIN)/vertigo bench plugin-call
	$(BIN)/vertigo bench placement --nodes 1000 --vms 20000
	$(BIN)/vertigo bench idle --vms 100
	$(BIN)/vertigo bench react
	$(BIN)/vertigo bench migrate --mem 1GiB
	$(BIN)/vertigo bench migrate-net

# protoc from Debian, the Go generators from Go modules (pinned).
deps-proto:
	@command -v protoc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null; }
	@GOBIN=$(GOBIN_DIR) $(GO) install $(PROTOC_GEN_GO)
	@GOBIN=$(GOBIN_DIR) $(GO) install $(PROTOC_GEN_GO_GRPC)

# proto regenerates the committed Go code from sdk/proto.
proto: deps-proto
	cd sdk && PATH=$(GOBIN_DIR):$$PATH protoc -I proto \
	  --go_out=. --go_opt=module=$(SDK_MODULE) \
	  --go-grpc_out=. --go-grpc_opt=module=$(SDK_MODULE) \
	  proto/vertigo/v1/*.proto

# check-proto fails when the committed generated code is not what the .proto
# files produce.
check-proto: deps-proto
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	cd sdk && PATH=$(GOBIN_DIR):$$PATH protoc -I proto \
	  --go_out=$$tmp --go_opt=module=$(SDK_MODULE) \
	  --go-grpc_out=$$tmp --go-grpc_opt=module=$(SDK_MODULE) \
	  proto/vertigo/v1/*.proto && \
	diff -r $$tmp/proto/vertigov1 proto/vertigov1 >/dev/null || { echo "sdk/proto/vertigov1 is stale: run 'make proto'"; exit 1; }

clean:
	rm -rf $(BIN) build
