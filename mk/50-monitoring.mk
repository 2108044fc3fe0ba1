# Monitoring (issue 5): promtool check + unit tests of monitoring/rules (every alert firing and not
# firing), terraform test of the module (terraform/modules/monitoring/tests: the backup-age limits it
# derives from the pgBackRest schedules), the dashboard/rule query check (crates/ffe-validate/tests/dashboards.rs), and the rendered
# terraform/modules/monitoring (fixture monitoring/render, every option on, the Postgres/Vault layers included)
# validated offline by ffe-validate. What this release deploys (those layers off) is asserted by
# terraform/environments/ha/tests/example.tftest.hcl (run monitoring_leaves_out_postgres_and_vault).
TEST_TARGETS += test-monitoring
.PHONY: test-monitoring monitoring-render
MONITORING_OUT := $(ROOT)/target/monitoring
# Both ends of the supported Kubernetes minors (terraform/environments/ha/pins.tf).
MONITORING_KUBE_VERSIONS := 1.35 1.37

test-monitoring: monitoring-render test-manifests
	promtool check rules monitoring/rules/*.yaml
	promtool test rules monitoring/tests/*.yaml
	cd terraform/modules/monitoring && TF_DATA_DIR=$(MONITORING_OUT)/.module-tests terraform init -input=false -backend=false -no-color >/dev/null \
	  && CHECKPOINT_DISABLE=1 TF_DATA_DIR=$(MONITORING_OUT)/.module-tests terraform test -no-color
	cargo nextest run --workspace -E 'package(ffe-validate) and binary(dashboards)'
	cargo build -q --workspace --bins
	for k in $(MONITORING_KUBE_VERSIONS); do \
	  target/debug/ffe-validate manifests --kube-version $$k --crds $(DELIVERED_CRDS) - < $(MONITORING_OUT)/bundle.yaml \
	    || { echo "test-monitoring: rendered bundle invalid for Kubernetes $$k"; exit 1; }; \
	done

# Render the module through a fixture root module (no providers, no state kept).
monitoring-render:
	rm -rf $(MONITORING_OUT) && mkdir -p $(MONITORING_OUT)
	cd monitoring/render && TF_DATA_DIR=$(MONITORING_OUT)/.terraform terraform init -input=false -backend=false -no-color >/dev/null
	cd monitoring/render && TF_DATA_DIR=$(MONITORING_OUT)/.terraform terraform apply -input=false -auto-approve -no-color -lock=false -state=$(MONITORING_OUT)/render.tfstate >/dev/null
	cd monitoring/render && terraform output -no-color -state=$(MONITORING_OUT)/render.tfstate -raw bundle > $(MONITORING_OUT)/bundle.yaml
	rm -f monitoring/render/.terraform.lock.hcl
	@echo "monitoring-render: $$(grep -c '^# [a-z0-9-]*\.yaml$$' $(MONITORING_OUT)/bundle.yaml) files in $(MONITORING_OUT)/bundle.yaml"
