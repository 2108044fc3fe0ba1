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
PLUGIN_DIR  := $(ENV_HA)/terraform.d/plugins/registry.terraform.io/three-rivers-tech/ffe/$(PROVIDER_VERSION)/linux_amd64

TEST_TARGETS :=
include $(sort $(wildcard mk/*.mk))

.PHONY: help deps build provider-install plan test
help:
	@echo "make plan   build + install the provider, terraform init (offline), plan the example tfvars"
	@echo "make test   install test dependencies, then run every test: $(TEST_TARGETS)"

deps:
	./scripts/install-deps.sh

build:
	cargo build --workspace --bins

provider-install: build
	mkdir -p $(PLUGIN_DIR)
	install -m 0755 target/debug/terraform-provider-ffe $(PLUGIN_DIR)/terraform-provider-ffe_v$(PROVIDER_VERSION)

plan: provider-install
	cd $(ENV_HA) && rm -f .terraform.lock.hcl && terraform init -input=false -backend=false >/dev/null
	cd $(ENV_HA) && terraform plan -input=false -refresh=false -var-file=terraform.tfvars.example

test: deps
	$(MAKE) --no-print-directory $(TEST_TARGETS)
	@echo "make test: all of $(TEST_TARGETS) passed"
