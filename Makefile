# Lumen's make targets are its contract: run | test | bench | fuzz | robustness | check.
GO       ?= go
DATA     ?= ./lumen-data
ADDR     ?= 127.0.0.1:7070
FUZZTIME ?= 20s
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BENCHTIME ?= 1s
export GOFLAGS := -buildvcs=false

.PHONY: all build guests run test bench fuzz robustness check fmt vet toolchain

all: build

## build: the single static lumen binary
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X github.com/lumenflow/lumen/engine/api.Version=$(VERSION)" -o bin/lumen ./cmd/lumen

## guests: build each example's guest (examples/<name>/guest) into examples/<name>/build/guest.wasm
guests:
	@for d in examples/*/guest; do \
	  ex=$$(dirname $$d); mkdir -p $$ex/build; \
	  echo "build $$ex"; (cd $$d && GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 $(GO) build -buildmode=c-shared -o ../build/guest.wasm .) || exit 1; \
	done

## run: build, then start the single-node engine with the bundled examples loaded
run: build guests
	./bin/lumen up --data $(DATA) --http $(ADDR) --examples examples

## test: vet, then every test, guests built from source. Everything runs under the race detector
## but the examples and the CLI, whose tests drive real lumen processes; the model's tiny training
## runs once more without it, long enough to learn its text tasks.
NORACE = lumen/(cmd|examples)/
test: toolchain vet
	$(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v -E '$(NORACE)')
	$(GO) test -timeout 20m $$($(GO) list ./... | grep -E '$(NORACE)')
	$(GO) test -timeout 10m -run 'Tiny|OpenAIClient' ./model/

## bench: benchmarks, summarised as JSON in bench.json
bench: toolchain
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 30m ./... | tee /dev/stderr | $(GO) run ./internal/benchjson > bench.json
	@echo "wrote bench.json"

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## robustness: the slow suites, opt-in
robustness: toolchain
	LUMEN_ROBUSTNESS=1 $(GO) test -race -timeout 60m ./...
	LUMEN_ROBUSTNESS=1 $(GO) test -timeout 60m -run TestSmall ./model/

## check: formatting, vet and the tests
check: fmt vet test

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./sdk/abi/ ./sdk/go/

## toolchain: the guest toolchains the tests build with, each installed only when missing: clang
## and wasi-libc for C, Debian's rustc and cargo with the wasm32-wasi std for Rust (apt-get),
## AssemblyScript pinned by sdk/assemblyscript/package-lock.json (npm ci into its node_modules), and
## wabt, whose wat2wasm checks the committed .wasm of hand-written .wat guests
GUEST_APT := clang lld wasi-libc libclang-rt-dev-wasm32 rustc cargo libstd-rust-dev-wasm32 wabt
toolchain:
	@$(GO) version
	@missing=""; \
	for p in $(GUEST_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "toolchain: installing$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi
	@cd sdk/assemblyscript && if ! cmp -s package-lock.json node_modules/.lumen-lock; then \
	  echo "toolchain: npm ci in sdk/assemblyscript"; \
	  npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.lumen-lock; \
	fi
