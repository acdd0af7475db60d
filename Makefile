# Majordomo for Go. `make run` installs what is missing and runs the broker;
# `make test` runs every check CI runs.
GO       ?= go
ENDPOINT ?= tcp://*:5555
FUZZTIME ?= 15s
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all deps test-deps build run test vet lint unit fuzz clean

all: build

deps:
	./scripts/deps.sh

test-deps:
	./scripts/deps.sh --test

build: deps
	mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

run: build
	./bin/mdbroker --endpoint $(ENDPOINT)

vet:
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; [ -z "$$out" ] || { echo "gofmt would change: $$out" >&2; exit 1; }

# staticcheck, pinned; fetched through the module proxy, not added to go.mod.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 -timeout 10m ./...

fuzz:
	./scripts/fuzz-selftest.sh
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

test: test-deps vet lint unit fuzz

clean:
	rm -rf bin
