# ffe-ha — the two commands an operator needs are `make plan` and `make test`.
# Sub-targets live in mk/*.mk, one file per concern; `make test` runs every `test-*` target.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT        := $(abspath .)
TOOLS       := $(ROOT)/tools
export PATH := $(TOOLS)/bin:$(TOOLS)/venv/bin:$(PATH)
export TF_CLI_CONFIG_FILE := /dev/null
export CARGO_TERM_COLOR := never
# The provider builds without protoc (vendor/tf-provider compiles its .proto files with protox).
# Pointing PROTOC at nothing makes any build step that still wanted protoc fail loudly.
export PROTOC := /nonexistent/protoc-is-not-needed
ENV_HA      := $(ROOT)/terraform/environments/ha
PROVIDER_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# provider-install puts the provider in $(PLUGIN_BASE)/<platform>, the platform named as Terraform
# names it (linux_amd64, linux_arm64, darwin_arm64, ...): scripts/tf-platform.sh asks terraform.
PLUGIN_BASE := $(ENV_HA)/terraform.d/plugins/registry.terraform.io/three-rivers-tech/ffe/$(PROVIDER_VERSION)
# `make tools KUBERNETES_MINOR=v1.37`: kubectl/Helm for another supported minor (default: pins.tf's).
KUBERNETES_MINOR ?=

TEST_TARGETS :=
include $(sort $(wildcard mk/*.mk))

.PHONY: help tools deps build provider-install cli plan test
help:
	@echo "make plan   build + install the provider (cargo fetches crates from crates.io on the first build),"
	@echo "            terraform init (offline), plan terraform.tfvars.example alone (your terraform.tfvars is left out)"
	@echo "make test   install test dependencies (make deps, as root), then run every test: $(TEST_TARGETS)"
	@echo "make tools  operator tools only: Helm and kubectl for the cluster's Kubernetes minor into tools/bin (no root)"
	@echo "make cli    the ffe-ha operations CLI into tools/bin (docs/operations.md)"

# Operator tools (no root, no apt): Helm + kubectl matching the cluster's Kubernetes minor.
tools:
	./scripts/install-tools.sh $(KUBERNETES_MINOR)

# Everything the tests need (apt as root, Python venvs, Helm v3, cargo-nextest) plus `tools`.
deps:
	KUBERNETES_MINOR=$(KUBERNETES_MINOR) ./scripts/install-deps.sh

build:
	cargo build --workspace --bins

provider-install: build
	@platform=$$(./scripts/tf-platform.sh) && [ -n "$$platform" ] \
	  || { echo "provider-install: cannot tell Terraform's platform (scripts/tf-platform.sh)"; exit 1; }; \
	dir=$(PLUGIN_BASE)/$$platform; \
	mkdir -p "$$dir" && install -m 0755 target/debug/terraform-provider-ffe "$$dir/terraform-provider-ffe_v$(PROVIDER_VERSION)" \
	  && echo "provider-install: $${dir#$(ROOT)/}/terraform-provider-ffe_v$(PROVIDER_VERSION)"

# The operations CLI next to the operator tools (tools/bin, on the PATH the runbook exports).
cli: build
	install -D -m 0755 target/debug/ffe-ha $(TOOLS)/bin/ffe-ha && echo "cli: tools/bin/ffe-ha"

# The example alone, in a scratch copy without auto-loaded *.tfvars (scripts/plan-example.sh).
plan: provider-install
	./scripts/plan-example.sh

test: deps
	$(MAKE) --no-print-directory $(TEST_TARGETS)
	@echo "make test: all of $(TEST_TARGETS) passed"
