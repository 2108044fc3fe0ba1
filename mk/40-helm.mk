# The ffe-backend Helm chart (issue 4): lint with Helm v4 and v3, validate the rendered manifests
# (Kubernetes + CRD schemas) and the Rust assertions on the rendered objects; checkov scans the
# renders in test-checkov (mk/45-checkov.mk).
# `make app-chart` packages the chart for Terraform's deploy_app (terraform/environments/ha/app.tf,
# rendered by terraform/modules/app; helm-assert also plans that module, so it needs terraform).
CHART_DIR      := helm/ffe-backend
CHART_VALUES_F := $(addprefix $(CHART_DIR)/,values.yaml values-production.yaml values-staging.yaml) \
                  $(sort $(wildcard $(CHART_DIR)/ci/*.yaml))
# Upstream FFE chart's own values files (helm/ffe-backend/tests/upstream-values/SOURCE.md): they must
# lint and render as the operators have them. Not given to checkov (mk/45-checkov.mk): upstream's
# own settings (latest tag, UID 1000, writable root filesystem) are theirs to change, and our values
# pass it.
UPSTREAM_VALUES_F := $(sort $(wildcard $(CHART_DIR)/tests/upstream-values/values*.yaml)) \
                     $(CHART_DIR)/tests/upstream-values/upstream-values.yaml
HELM4          := $(TOOLS)/bin/helm
HELM3          := $(TOOLS)/helm3/helm
HELM_KUBE_VERSIONS := 1.29 1.33
# The chart renders its ServiceMonitor/PrometheusRule only where the cluster serves those kinds;
# the renders checked here are those of a cluster with monitoring (the platform's default).
HELM_MONITORING_APIS := --api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule
APP_CHART_TGZ  := $(ENV_HA)/charts/ffe-backend.tgz

TEST_TARGETS += test-helm
.PHONY: test-helm helm-lint helm-validate helm-assert app-chart

test-helm: helm-lint helm-validate helm-assert

helm-lint:
	@for v in $(CHART_VALUES_F) $(UPSTREAM_VALUES_F); do for h in $(HELM4) $(HELM3); do \
	  $$h lint --strict $(CHART_DIR) -n ffe -f $$v >/tmp/ffe-helm-lint.$$$$ 2>&1 \
	    || { cat /tmp/ffe-helm-lint.$$$$; rm -f /tmp/ffe-helm-lint.$$$$; echo "helm-lint: $$($$h version --short) $$v FAILED"; exit 1; }; \
	  rm -f /tmp/ffe-helm-lint.$$$$; \
	done; echo "helm-lint: $$v ok (Helm v4 + v3, --strict)"; done

# CRD schemas: the ones the full platform plan delivers (written by test-manifests).
helm-validate: test-manifests
	cargo build -q --workspace --bins
	@for v in $(CHART_VALUES_F) $(UPSTREAM_VALUES_F); do for k in $(HELM_KUBE_VERSIONS); do \
	  $(HELM4) template ffe $(CHART_DIR) -n ffe -f $$v --kube-version $$k $(HELM_MONITORING_APIS) \
	    | ./target/debug/ffe-validate manifests --kube-version $$k --crds $(DELIVERED_CRDS) - \
	    || { echo "helm-validate: $$v (Kubernetes $$k) FAILED"; exit 1; }; \
	done; done

helm-assert:
	cargo nextest run --workspace -E 'package(ffe-validate) and binary(helm_ffe_backend)'

# Package the chart for `deploy_app = true`. Rebuilt only when a chart file changes, so the
# HelmChart's chartContent (and the Terraform plan) stays the same between runs. Needs only
# `make tools` (Helm in tools/bin, no root), not `make deps`: order-only, so it forces no rebuild.
app-chart: $(APP_CHART_TGZ)
$(APP_CHART_TGZ): $(shell find $(CHART_DIR) -type f -not -path '*/ci/*') | tools
	@mkdir -p $(dir $@)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(HELM4) package $(CHART_DIR) -d "$$tmp" >/dev/null && mv "$$tmp"/ffe-backend-*.tgz $@
	@echo "app-chart: $@ ($$(stat -c %s $@) bytes)"
