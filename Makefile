# audisp-enrich — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin/audisp-enrich
CAPTURE := plugin/testdata/capture.log
CORPUS ?= /var/tmp/audisp-enrich-corpus.log
CORPUS_EXECS ?= 28000
FUZZTIME ?= 30s
TEST_TIMEOUT ?= 40m

.PHONY: help build run test test-ima fuzz bench corpus profile vet clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/audisp-enrich (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./plugin/cmd/audisp-enrich

run: build ## replay the bundled real-auditd capture through the default pipeline, JSON to stdout
	./$(BIN) replay $(CAPTURE)

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: vet build ## run every test: unit, fuzz seeds, real auditd, rsyslog, Kafka (kfake + kcat), IMA under QEMU
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) fuzz FUZZTIME=5s

test-ima: ## real IMA end to end: Debian's kernel under QEMU (TCG), auditd and the plugin in the guest
	$(GO) test -count=1 -v -timeout 10m ./plugin/imatest/

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

corpus: ## capture a ~200k-record corpus from a real auditd (root; kernel audit) into $(CORPUS)
	CORPUS_OUT=$(CORPUS) CORPUS_EXECS=$(CORPUS_EXECS) $(GO) test -count=1 -timeout 30m -run TestGenerateCorpus -v ./plugin/

bench: ## benchmarks (parse+reassemble+encode on one core over the corpus, enrichers, buffers, sinks)
	@test -s $(CORPUS) || $(MAKE) corpus
	AUDISP_ENRICH_CORPUS=$(CORPUS) GOMAXPROCS=1 $(GO) test -run='^$$' -bench=. -benchmem -count=1 ./plugin/ ./plugin/audit/
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./enrich/... ./sinks/...

profile: ## CPU and allocation profiles of the pipeline benchmark (cpu.prof, mem.prof)
	@test -s $(CORPUS) || $(MAKE) corpus
	AUDISP_ENRICH_CORPUS=$(CORPUS) GOMAXPROCS=1 $(GO) test -run='^$$' -bench=BenchmarkPipeline -benchmem -cpuprofile cpu.prof -memprofile mem.prof ./plugin/
	$(GO) tool pprof -top -nodecount=15 cpu.prof | head -25

clean: ## remove build output
	rm -rf bin dist cpu.prof mem.prof plugin.test
