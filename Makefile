# kubectl-stage — `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
GO    ?= go

BIN_DIR  := bin
DIST_DIR := dist

VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
GIT_COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
GIT_TREE     ?= $(shell if git diff --quiet HEAD -- 2>/dev/null; then echo clean; else echo dirty; fi)
# The commit time, not the wall clock, keeps builds reproducible.
BUILD_DATE   ?= $(shell git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || TZ=UTC date +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG  := github.com/kubectl-stage/kubectl-stage/pkg/version
LDFLAGS      := -s -w \
	-X $(VERSION_PKG).gitVersion=$(VERSION) \
	-X $(VERSION_PKG).gitCommit=$(GIT_COMMIT) \
	-X $(VERSION_PKG).gitTreeState=$(GIT_TREE) \
	-X $(VERSION_PKG).buildDate=$(BUILD_DATE)
GO_BUILD_BASE := CGO_ENABLED=0 $(GO) build -trimpath
GO_BUILD     := $(GO_BUILD_BASE) -ldflags "$(LDFLAGS)"

# The binary cache `make tools` fills, keyed by version (STAGE_TOOLS_DIR moves it).
TOOLS_DIR ?= $(or $(STAGE_TOOLS_DIR),$(CURDIR)/.cache/tools)
HELM      := $(TOOLS_DIR)/helm-$(shell cat hack/tools/helm-version)/helm

# Integration and end-to-end tests start real daemons; give them time.
TEST_TIMEOUT ?= 30m

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the system packages (etcd, openvpn, wireguard, iperf3...) if missing
	./hack/install-deps.sh

.PHONY: tools
tools: ## Build the test control plane, the node components (kubelet, kubeadm), kwok, helm and krew into $(TOOLS_DIR)
	./hack/build-tools.sh

.PHONY: build
build: ## Build kubectl-stage, the webhook, the node agent, the rollout controller and the gossip example into bin/
	$(GO_BUILD) -o $(BIN_DIR)/kubectl-stage ./cmd/kubectl-stage
	$(GO_BUILD) -o $(BIN_DIR)/stage-webhook ./webhook/cmd/stage-webhook
	$(GO_BUILD) -o $(BIN_DIR)/kubectl-stage-agent ./cmd/kubectl-stage-agent
	$(GO_BUILD) -o $(BIN_DIR)/stage-rollout-controller ./cmd/stage-rollout-controller
	$(GO_BUILD_BASE) -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN_DIR)/gossip ./examples/gossip

IMAGES_DIR ?= $(BIN_DIR)/images

.PHONY: image
image: ## Build the webhook, rollout controller, node agent, gossip (v1, v2) and pause images as reproducible OCI tarballs into $(IMAGES_DIR), without Docker
	$(GO) run ./hack/image -out $(IMAGES_DIR) -webhook-ldflags "$(LDFLAGS)"

.PHONY: image-push
image-push: image ## Push the images to REGISTRY (e.g. make image-push REGISTRY=registry.example.com/team; docker login's credentials)
	@test -n "$(REGISTRY)" || { echo "set REGISTRY, e.g. make image-push REGISTRY=registry.example.com/team"; exit 1; }
	$(GO) run ./hack/image -out $(IMAGES_DIR) -push $(REGISTRY)

.PHONY: install
install: build ## Install kubectl-stage next to go's binaries (so `kubectl stage` finds it)
	install -D -m 0755 $(BIN_DIR)/kubectl-stage $$($(GO) env GOPATH)/bin/kubectl-stage

.PHONY: dist
dist: tools ## Cross-build the plugin and webhook archives (linux/darwin/windows x amd64/arm64), the chart and the images (OCI tarballs) into dist/, reproducibly
	./hack/dist.sh all

.PHONY: release-check
release-check: tools ## Rebuild every platform's plugin archive and compare with krew.yaml (make test checks the host's only)
	STAGE_RELEASE_ALL_PLATFORMS=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run Krew ./test/release/

.PHONY: krew
krew: ## Rebuild the plugin archives for the release in hack/release.env and rewrite krew.yaml with their checksums
	sed -i "s/^RELEASE_COMMIT=.*/RELEASE_COMMIT=$$(git rev-parse HEAD)/" hack/release.env
	./hack/dist.sh plugin
	./hack/krew.sh

.PHONY: docs
docs: ## Regenerate docs/reference.md from the commands
	$(GO) run ./hack/gendocs

.PHONY: fmt
fmt: ## Format the code
	gofmt -w cmd pkg test webhook examples hack/tools

.PHONY: vet
vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd pkg test webhook examples)" || { gofmt -l cmd pkg test webhook examples; echo "gofmt needed (make fmt)"; exit 1; }

.PHONY: test-unit
test-unit: ## Unit tests, with the race detector
	$(GO) test -race -count=1 ./cmd/... ./pkg/... ./webhook/... ./examples/...

.PHONY: test-integration
test-integration: tools build ## Integration and end-to-end tests against the real control plane (VPN tests need root)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./test/...

.PHONY: test
test: deps tools vet test-unit test-integration ## Everything CI runs: set-up, vet, unit and integration tests

.PHONY: bench
bench: tools build ## Benchmarks: IP allocation, join, rollout overhead against the local API server, VPN throughput (root)
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...
	$(GO) test -run '^$$' -bench . -benchtime 20x ./test/enrollment/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./test/vpn/ ./test/webhook/
	$(GO) test -run '^$$' -bench . -benchtime 3x ./test/rollout/

.PHONY: build-webhook
build-webhook: ## Build the admission webhook server into bin/
	$(GO_BUILD) -o $(BIN_DIR)/stage-webhook ./webhook/cmd/stage-webhook

.PHONY: chart-lint
chart-lint: tools ## helm lint and render the chart
	$(HELM) lint --strict charts/kubectl-stage
	$(HELM) template stage charts/kubectl-stage >/dev/null

.PHONY: fuzz
fuzz: ## Fuzz the webhook's AdmissionReview decoding and mutation for 60s
	$(GO) test -run '^$$' -fuzz FuzzAdmissionReview -fuzztime 60s ./webhook/

.PHONY: demo
demo: deps tools build ## The whole story locally: cluster, 3 sites, webhook, example app, rollout; as root real OpenVPN tunnels (DEMO_FLAGS=-keep keeps it up)
	$(GO) run ./test/localstage $(DEMO_FLAGS)

.PHONY: clean
clean: ## Remove build outputs (keeps the control-plane cache; clean-tools removes it)
	rm -rf $(BIN_DIR) $(DIST_DIR)

.PHONY: clean-tools
clean-tools: ## Remove the cached control-plane binaries
	rm -rf $(TOOLS_DIR)
