# acmehub: build, run and check. `make test` is what CI runs.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/acmehub
LINT_VER  := v2.15.0
FUZZTIME  ?= 20s
BENCHTIME ?= 1s

.PHONY: build run test bench fuzz vet lint cover tidy-check check clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags allproviders -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/acmehub

# The embedded default: a SQLite file in ./acmehub-data, zone acme.test,
# DNS on 127.0.0.1:8053, API on 127.0.0.1:8555.
run: build
	./$(BIN) serve

# Whole suite with the race detector. Tests that need an external tool
# (dnsperf, knotd...) skip without it, or fail with ACMEHUB_TEST_REQUIRE_ALL=1.
test:
	$(GO) test -race -count=1 -timeout 14m ./...

# Benchmarks: Go micro-benchmarks, then the load comparisons (dnsperf
# against acmehub and Knot on loopback, RSS and start-up with 100k names).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...
	ACMEHUB_BENCH=1 $(GO) test -count=1 -run 'TestLoad' -v -timeout 20m ./internal/loadtest/

# A short run of every fuzz target; crashers land in testdata/fuzz.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzServeDNS$$' -fuzztime $(FUZZTIME) ./dnsserver/
	$(GO) test -run '^$$' -fuzz '^FuzzParseToken$$' -fuzztime $(FUZZTIME) ./internal/secret/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSetRequest$$' -fuzztime $(FUZZTIME) ./api/
	$(GO) test -run '^$$' -fuzz '^FuzzRuleMatch$$' -fuzztime $(FUZZTIME) ./rules/

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }

lint: vet
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VER) run ./...

cover:
	$(GO) test -count=1 -coverprofile=cover.out ./... && $(GO) tool cover -func=cover.out | tail -1

tidy-check:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

check: vet lint test

clean:
	rm -rf bin cover.out
