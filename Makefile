# audisp-enrich — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS = -s -w -X main.version=$(VERSION)
BIN := bin/audisp-enrich
DEMO := plugin/testdata/demo
CORPUS ?= /var/tmp/audisp-enrich-corpus.log
CORPUS_EXECS ?= 28000
CORPUS_MIXED ?= /var/tmp/audisp-enrich-corpus-mixed.log
CORPUS_MIXED_EXECS ?= 9500
FUZZTIME ?= 30s
TEST_TIMEOUT ?= 40m
# SIGMA_RULES: Sigma rules that bench-ratio's enriched pipeline and live-cost's plugin load ([enrich.sigma]):
# "shared" for SigmaHQ's Linux rules in ../shared/sigma, or comma-separated files and directories (docs/sigma.md).
export AUDISP_ENRICH_SIGMA_RULES = $(SIGMA_RULES)

.PHONY: help build run demo-capture check test tidy-check test-ima fuzz bench corpus corpus-mixed profile vet clean reliability bench-peers bench-ratio live-cost bench-e2e

help: ## list the targets
	@grep -E '^[A-Za-z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/audisp-enrich (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./plugin/cmd/audisp-enrich

# make run: stdout carries only the JSON Lines (no command echo; the build's
# output goes to stderr); on a terminal, replay adds a summary on stderr.
run: ## replay the demo capture (real IMA and auditd) with the demo config: JSON Lines on stdout, a summary on stderr (terminal)
	@$(MAKE) -s build >&2
	@rm -rf build/demo-state && mkdir -p build/demo-state
	@./$(BIN) replay --config $(DEMO)/config.toml $(DEMO)/capture.log

demo-capture: ## regenerate $(DEMO) (capture, blocklist, VirusTotal answers) with real IMA under QEMU (root)
	DEMO_CAPTURE_OUT=$(CURDIR)/$(DEMO) $(GO) test -count=1 -v -timeout 10m -run TestDemoCapture ./plugin/imatest/

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet: ## go vet, staticcheck (pinned) and gofmt check
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

tidy-check: ## fail when `go mod tidy` would change go.mod or go.sum (prints the diff)
	$(GO) mod tidy -diff

check: vet tidy-check ## the fast loop (no root or services; target under 3 min): vet, staticcheck, gofmt, tidy, go test -short -race
	$(GO) test -short -race -count=1 -timeout 10m ./...

test: vet tidy-check build ## run every test: unit, fuzz seeds, real auditd, rsyslog, Kafka (kfake + kcat), IMA under QEMU, packages
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) lint-packages
	$(MAKE) fuzz FUZZTIME=2000x

test-ima: ## real IMA end to end: Debian's kernel under QEMU (TCG), auditd and the plugin in the guest
	$(GO) test -count=1 -v -timeout 10m ./plugin/imatest/

reliability: ## long reliability runs (2 min outages, 15 restarts, 10 kills, real auditd outage, disk faults on tmpfs); figures in docs/reliability.md
	AUDISP_RELIABILITY_FULL=1 $(GO) test -count=1 -v -timeout 40m -run 'TestOutage|TestRestart|TestCrash|TestFullBuffer|TestBlockedStop|TestRealAuditd|TestDiskFault' ./plugin/e2e/
	$(GO) test -count=1 -v -run 'TestDiskFault' ./sinks/buffer/

fuzz: ## run every fuzz target for FUZZTIME each (default 30s; a count like 2000x runs that many inputs)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

corpus: ## capture a ~200k-record corpus from a real auditd (root; kernel audit) into $(CORPUS)
	CORPUS_OUT=$(CORPUS) CORPUS_EXECS=$(CORPUS_EXECS) $(GO) test -count=1 -timeout 30m -run TestGenerateCorpus -v ./plugin/

corpus-mixed: ## capture the second corpus (hex-encoded arguments, env runs, five kinds of file writes; root) into $(CORPUS_MIXED)
	CORPUS_OUT=$(CORPUS_MIXED) CORPUS_KIND=mixed CORPUS_EXECS=$(CORPUS_MIXED_EXECS) $(GO) test -count=1 -timeout 30m -run TestGenerateCorpus -v ./plugin/

bench: ## benchmarks (parse+reassemble+encode on one core over the corpus, enrichers, buffers, sinks)
	@test -s $(CORPUS) || $(MAKE) corpus
	AUDISP_ENRICH_CORPUS=$(CORPUS) GOMAXPROCS=1 $(GO) test -run='^$$' -bench=. -benchmem -count=1 ./plugin/ ./sinks/encode/
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./enrich/... ./sinks/...

profile: build ## CPU and allocation profiles (pipeline, replay, live, the binary's replay) into build/perf/profile
	@test -s $(CORPUS) || $(MAKE) corpus
	CORPUS=$(CORPUS) plugin/perf/profile.sh

bench-peers: build ## laurel vs go-libaudit vs audisp-enrich on CORPUS (RUNS=5, PROCS=1,2 adds one and two cores; chart if gnuplot; docs/performance.md)
	@test -s $(CORPUS) || $(MAKE) corpus
	CORPUS=$(CORPUS) plugin/perf/peers.sh

bench-ratio: ## all enrichers on vs none, interleaved in each run (issue 3's 80% target; PROCS=1 for one core; IMA=1 adds IMA hashes)
	@test -s $(CORPUS) || $(MAKE) corpus
	CORPUS=$(CORPUS) IMA=$(IMA) plugin/perf/ratio.sh

live-cost: ## CPU share under a real auditd at 100/300/1000 exec/s, next to laurel
	plugin/perf/live-cost.sh

bench-e2e: ## stdin -> Kafka (kfake) / rsyslog / syslog-ng events/s
	@test -s $(CORPUS) || $(MAKE) corpus
	CORPUS=$(CORPUS) plugin/perf/e2e.sh

clean: ## remove build output
	rm -rf bin dist cpu.prof mem.prof plugin.test

# --- packaging (packaging/, docs/packaging.md) ---
NFPM_VERSION := v2.44.0
NFPM := build/tools/nfpm
PKG_VERSION ?= 0.1.0
PKG_RELEASE ?= 1
PKG_STAGE := build/pkg
# docs/ files the man pages cite, shipped gzipped in /usr/share/doc/audisp-enrich/ (packaging/nfpm.yaml)
PKG_DOCS := fleet.md schema.md sigma.md
DEB := dist/audisp-enrich_$(PKG_VERSION)-$(PKG_RELEASE)_amd64.deb
RPM := dist/audisp-enrich-$(PKG_VERSION)-$(PKG_RELEASE).x86_64.rpm

.PHONY: package lint-packages check-pkg-version

# The packaged binary reports the package's version (--version), not git's.
package: VERSION = $(PKG_VERSION)-$(PKG_RELEASE)

$(NFPM):
	GOBIN=$(CURDIR)/build/tools CGO_ENABLED=0 $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

check-pkg-version: ## fail unless both changelogs start at PKG_VERSION-PKG_RELEASE and the man pages say PKG_VERSION
	@v='$(PKG_VERSION)-$(PKG_RELEASE)'; \
	deb=$$(sed -n '1s/^audisp-enrich (\([^)]*\)).*/\1/p' packaging/changelog); \
	rpm=$$(sed -n 's/^- semver: *//p' packaging/changelog.yml | head -n 1); \
	[ "$$deb" = "$$v" ] || { echo "package $$v: packaging/changelog starts at $$deb: add an entry for $$v" >&2; exit 1; }; \
	[ "$$rpm" = "$$v" ] || { echo "package $$v: packaging/changelog.yml starts at $$rpm: add an entry for $$v" >&2; exit 1; }; \
	for m in packaging/man/audisp-enrich.8 packaging/man/audisp-enrich.conf.5; do \
	  head -n 1 $$m | grep -qF '"audisp-enrich $(PKG_VERSION)"' || { echo "package $$v: $$m: .TH does not say audisp-enrich $(PKG_VERSION)" >&2; exit 1; }; \
	done

package: check-pkg-version build $(NFPM) ## build the .deb and .rpm into dist/ (nfpm, packaging/nfpm.yaml)
	./$(BIN) check-config packaging/config.toml || [ $$? = 3 ] # 3: valid, but no audisp-enrich account on this (build) machine
	rm -rf $(PKG_STAGE) && mkdir -p $(PKG_STAGE)/scripts/deb $(PKG_STAGE)/scripts/rpm dist
	cp $(BIN) $(PKG_STAGE)/audisp-enrich
	for m in audisp-enrich.8 audisp-enrich.conf.5; do gzip -9n < packaging/man/$$m > $(PKG_STAGE)/$$m.gz; done
	gzip -9n < packaging/changelog > $(PKG_STAGE)/changelog.gz
	for d in $(PKG_DOCS); do gzip -9n < docs/$$d > $(PKG_STAGE)/$$d.gz; done
	for s in packaging/scripts/deb/* packaging/scripts/rpm/*; do \
	  out=$(PKG_STAGE)/scripts/$${s#packaging/scripts/}; \
	  awk '/^#include common.sh$$/ { while ((getline l < "packaging/scripts/common.sh") > 0) print l; next } { print }' $$s > $$out; \
	  sh -n $$out; chmod 0755 $$out; \
	done
	grep -v -e '^license:' -e '^changelog:' packaging/nfpm.yaml > $(PKG_STAGE)/nfpm-deb.yaml
	awk '{ print } /^description: \|-$$/ { getline }' packaging/nfpm.yaml > $(PKG_STAGE)/nfpm-rpm.yaml
	rm -f $(DEB) $(RPM)
	PKG_VERSION=$(PKG_VERSION) PKG_RELEASE=$(PKG_RELEASE) SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) \
	  $(NFPM) package --config $(PKG_STAGE)/nfpm-deb.yaml --packager deb --target $(DEB)
	PKG_VERSION=$(PKG_VERSION) PKG_RELEASE=$(PKG_RELEASE) SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) \
	  $(NFPM) package --config $(PKG_STAGE)/nfpm-rpm.yaml --packager rpm --target $(RPM)

lint-packages: package ## lintian and rpmlint on the packages (fail on any lintian error/warning, rpmlint error)
	lintian --fail-on error,warning --display-info $(DEB)
	mkdir -p build/rpmlint-bin && cp packaging/rpmlint-cpio build/rpmlint-bin/cpio
	PATH=$(CURDIR)/build/rpmlint-bin:$$PATH rpmlint -c packaging/rpmlint.toml $(RPM)
	rpm -qlp $(RPM) | grep -qx /usr/share/man/man8/audisp-enrich.8.gz # the rpmlint.toml filter of no-manual-page-for-binary relies on it
