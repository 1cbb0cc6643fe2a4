# Vertigo. `make run` and `make test` are the two set-up commands; both install
# what is missing first.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN := local
BIN := bin
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin

PLUGINS := $(BIN)/vertigo-scaler $(BIN)/vertigo-placement
TESTPLUGINS := $(BIN)/test/vertigo-testplugin

.PHONY: all build run test test-unit test-race conformance bench proto deps clean FORCE

all: build

build: $(BIN)/vertigo $(PLUGINS)

$(BIN)/vertigo: FORCE
	$(GO) build -o $@ ./host/cmd/vertigo

$(BIN)/vertigo-scaler: FORCE
	$(GO) build -o $@ ./plugins/scaler

$(BIN)/vertigo-placement: FORCE
	$(GO) build -o $@ ./plugins/placement

$(BIN)/test/vertigo-testplugin: FORCE
	$(GO) build -o $@ ./host/internal/testplugin

# Installs the Debian packages the build and tests need, when missing.
deps:
	@command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends protobuf-compiler; }

proto: deps
	GOBIN=$(GOBIN_DIR) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(GOBIN_DIR) $(GO) install $(PROTOC_GEN_GO_GRPC)
	cd sdk && PATH=$(GOBIN_DIR):$$PATH protoc -I proto \
	  --go_out=. --go_opt=module=github.com/vertigo-autoscaler/vertigo/sdk \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/vertigo-autoscaler/vertigo/sdk \
	  proto/vertigo/v1/*.proto

run: build
	$(BIN)/vertigo run -config config.hcl

test: build $(TESTPLUGINS)
	$(GO) vet ./... && (cd sdk && $(GO) vet ./...)
	cd sdk && $(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 ./...
	$(BIN)/vertigo plugin conformance scaler $(BIN)/vertigo-scaler
	$(BIN)/vertigo plugin conformance placement $(BIN)/vertigo-placement

clean:
	rm -rf $(BIN)
