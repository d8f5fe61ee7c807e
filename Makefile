# k8s-api-proxy. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CLUSTER := hack/control-plane/cluster.sh
# What a local control plane needs; helm (and the chart's tools) only deploy and the chart tests do.
CLUSTER_BINARIES := etcd kube-apiserver kubectl
IMG ?=

# Every target that runs Node.js runs the LTS line pinned in .node-version: hack/node.sh
# prints its bin directory (the machine's node when it is of that line, else the official
# binary installed once into ~/.cache/k8s-api-proxy/node/). `help` and the cluster status
# targets need no Node.js, so they do not trigger the install.
ifneq ($(filter-out help cluster-down cluster-status,$(or $(MAKECMDGOALS),help)),)
NODE_BIN := $(shell hack/node.sh)
ifeq ($(NODE_BIN),)
$(error hack/node.sh could not provide Node.js $(shell cat .node-version); see its message above)
endif
export PATH := $(NODE_BIN):$(PATH)
endif

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: install
install: node_modules/.package-lock.json ## Install npm dependencies (npm ci) when package-lock.json changed.

.PHONY: build
build: install ## Build bin/api (one bundled Node.js file).
	node scripts/build.mjs

.PHONY: generate-certs
generate-certs: install ## Write certs/{ca,server,client}.{crt,key}; FORCE=1 replaces, EXTRA_SANS=a,b adds SANs, CLIENT_CN=name, CLIENT_GROUPS=a,b.
	npx tsx hack/certs.ts certs

.PHONY: client-cert
client-cert: install ## Issue certs/NAME.{crt,key} from certs/ca.*: NAME=dashboard-1 (the CN unless CLIENT_CN=), CLIENT_GROUPS=a,b (O values).
	@if [ -z "$(NAME)" ]; then echo "client-cert: set NAME, e.g. make client-cert NAME=ci-pipeline CLIENT_GROUPS=ci" >&2; exit 2; fi
	npx tsx hack/certs.ts --client "$(NAME)" certs

.PHONY: run
run: build generate-certs ## Run the proxy against KUBECONFIG or ~/.kube/config on :8443 (probes on :8081).
	./bin/api

.PHONY: demo
demo: ## Local control plane + sample Deployments + the proxy on https://localhost:8443.
	@# The Node.js side (npm ci, bundle, certificates) and the Go builds are independent: run them side by side.
	$(MAKE) --no-print-directory -j3 build generate-certs cluster-binaries
	$(CLUSTER) up
	hack/demo.sh

.PHONY: openapi
openapi: install ## Regenerate openapi.json from the route schemas (commit the result).
	npx tsx scripts/openapi.ts

.PHONY: typecheck
typecheck: install ## TypeScript type check.
	npx tsc --noEmit

.PHONY: lint
lint: install ## ESLint, and lint the Dockerfile.
	npx eslint .
	node scripts/lint-dockerfile.mjs Dockerfile

##@ Control plane (real etcd + kube-apiserver on loopback)

.PHONY: control-plane
control-plane: ## Build (or reuse from ~/.cache/k8s-api-proxy) etcd, kube-apiserver, kubectl, helm, kube-score, promlint; fetch the Gateway API CRDs.
	hack/control-plane/build.sh

.PHONY: cluster-binaries
cluster-binaries: ## Build (or reuse) only etcd, kube-apiserver and kubectl: what cluster-up, demo and bench need.
	hack/control-plane/build.sh $(CLUSTER_BINARIES)

.PHONY: cluster-up
cluster-up: cluster-binaries ## Start (or repair) the local control plane in .cluster/ and write its kubeconfigs.
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and delete .cluster/.
	$(CLUSTER) down

.PHONY: cluster-status
cluster-status: ## Show whether etcd and kube-apiserver run.
	$(CLUSTER) status

##@ Test

.PHONY: test
test: install build control-plane ## Run every test: unit, chart lint, then integration on a real control plane (started and stopped here).
	@echo "unit tier on node $$(node --version) ($$(command -v node))"
	npm run --silent test:unit
	npm run --silent test:lint
	scripts/test-integration.sh

.PHONY: test-unit
test-unit: install ## Unit tests only (no cluster).
	@echo "unit tier on node $$(node --version) ($$(command -v node))"
	npm run --silent test:unit

.PHONY: test-lint
test-lint: install ## Chart lint tier: helm lint --strict and kube-score on every rendering (no cluster).
	hack/control-plane/build.sh helm kube-score
	npm run --silent test:lint

.PHONY: test-integration
test-integration: install build control-plane ## Integration and end-to-end tests on a real control plane in .cluster-test/.
	scripts/test-integration.sh

.PHONY: mutation
mutation: install ## Mutation testing (StrykerJS) of the unit tier; incremental; fails below the break threshold.
	npx stryker run

.PHONY: mutation-reflector
mutation-reflector: install ## Mutation testing of src/kube/reflector.ts alone, judged by its clock-driven tests (stryker.reflector.config.mjs).
	npx stryker run stryker.reflector.config.mjs

.PHONY: ci
ci: typecheck lint test ## What CI runs: typecheck, lint, all tests.

.PHONY: bench
bench: build cluster-binaries ## The performance report: proxy vs bare-TLS floor vs kube-apiserver, as ratios (BENCH_SCALE=N: the scale run).
	scripts/bench.sh

##@ Deploy

.PHONY: image
image: ## Build the image with podman (no Docker) from the unchanged Dockerfile on a cached local stand-in base; IMG=name:tag (default k8s-api-proxy:dev).
	hack/image/build.sh "$(or $(IMG),k8s-api-proxy:dev)"

.PHONY: docker-build-push
docker-build-push: ## Build and push the image; needs IMG=registry/repo:tag.
	@if [ -z "$(IMG)" ]; then echo "docker-build-push: set IMG, e.g. make docker-build-push IMG=registry.example.com/k8s-api-proxy:0.1.0" >&2; exit 2; fi
	docker build -t "$(IMG)" .
	docker push "$(IMG)"

.PHONY: helm
helm: ## Build (or reuse) only helm and kubectl, what deploy/undeploy need.
	hack/control-plane/build.sh helm kubectl

.PHONY: deploy
deploy: helm ## helm upgrade --install into NAMESPACE (created and marked if missing), certificates from certs/ (KUBECONFIG, IMG, RELEASE, NAMESPACE).
	hack/deploy.sh install

.PHONY: undeploy
undeploy: helm ## Remove the release and its ClusterRole/Binding; the namespace only if deploy created it and it is empty.
	hack/deploy.sh uninstall

.PHONY: clean
clean: ## Remove build output (not certs/ or the cluster).
	rm -rf bin dist coverage
