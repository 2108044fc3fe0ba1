# Platform manifests and upstream conformance: plan the HA environment, take every planned
# `ffe_manifests` bundle from `terraform show -json`, and check it with ffe-validate:
#   - every HelmChart rendered with the upstream chart vendored at its pinned version
#     (upstream/charts/), values keys, published versions, CRD delivery and order, host-network
#     spread, Retain claims, amtool on the rendered Alertmanager configuration;
#   - every document (ours and the charts' rendered output) against Kubernetes schemas
#     (kubernetes-validate) and the CRDs the plan itself delivers;
#   - version mentions in docs/ and comments against the pins.
# Three plans, in a private copy of the repository's terraform/, monitoring/, helm/, upstream/ and docs/examples:
#   example  terraform.tfvars.example as shipped;
#   full     + tests/fixtures/all-addons.tfvars (NFS CSI, logging, tracing, the app, the Istio mesh) + every
#            documented example in docs/examples/ (so each documented example is planned and checked;
#            secrets-export.tfvars adds the `backups` bundle: the secrets export and off-site copy);
#   openbao  the example with vault_distribution = "openbao" (the same Vault values on OpenBao's chart).
# Each at both ends of the supported Kubernetes minors (pins.tf). The full plan's delivered CRDs are
# written to target/delivered-crds for test-helm and test-monitoring.
TEST_TARGETS += test-manifests
.PHONY: test-manifests
MANIFESTS_WORK     := $(ROOT)/target/test-manifests
MANIFESTS_ENV      := $(MANIFESTS_WORK)/terraform/environments/ha
MANIFESTS_BUNDLES  := crds,namespaces,cni,vip,storage,edge,monitoring,postgres-crds,postgres,vault
MANIFESTS_KUBE     := 1.35 1.37
DELIVERED_CRDS     := $(ROOT)/target/delivered-crds
DOC_EXAMPLES       := $(sort $(wildcard $(ROOT)/docs/examples/*.tfvars))
MENTION_FILES       = $(shell git -C $(ROOT) ls-files README.md docs 'terraform/*.tf' 'helm/*/README.md' mk | sed 's|^|$(ROOT)/|')
MANIFESTS_VALIDATE := target/debug/ffe-validate terraform-plan --crds upstream/crds/helm-controller \
  --upstream upstream --values-schema ffe-backend=$(ROOT)/helm/ffe-backend/values.schema.json

test-manifests: provider-install app-chart
	@SECONDS=0; \
	rm -rf $(MANIFESTS_WORK) && mkdir -p $(MANIFESTS_WORK); \
	tar -C $(ROOT) --exclude=.terraform --exclude=.terraform.lock.hcl --exclude='*.tfstate*' --exclude=terraform.tfvars --exclude='*.auto.tfvars*' \
	  --exclude=tfplan -cf - terraform monitoring helm upstream docs/examples | tar -C $(MANIFESTS_WORK) -xf -; \
	cd $(MANIFESTS_ENV) && terraform init -input=false -backend=false -no-color >/dev/null; \
	for plan in example full openbao; do \
	  extra=; expect=$(MANIFESTS_BUNDLES); \
	  if [ $$plan = full ]; then \
	    extra="-var-file=tests/fixtures/all-addons.tfvars $(addprefix -var-file=,$(DOC_EXAMPLES))"; \
	    expect=$$expect,observability,app,backups,mesh-crds,mesh; fi; \
	  if [ $$plan = openbao ]; then extra="-var=vault_distribution=openbao"; fi; \
	  terraform plan -input=false -refresh=false -no-color -var-file=terraform.tfvars.example $$extra \
	    -out=$(MANIFESTS_WORK)/$$plan.tfplan >$(MANIFESTS_WORK)/$$plan.plan.txt 2>&1 \
	    || { cat $(MANIFESTS_WORK)/$$plan.plan.txt; echo "test-manifests: terraform plan ($$plan) FAILED"; exit 1; }; \
	  terraform show -json $(MANIFESTS_WORK)/$$plan.tfplan > $(MANIFESTS_WORK)/$$plan.plan.json; \
	  for kube in $(MANIFESTS_KUBE); do \
	    extra_args=; \
	    if [ $$plan = full ] && [ $$kube = $(lastword $(MANIFESTS_KUBE)) ]; then \
	      extra_args="--write-crds $(DELIVERED_CRDS) --mentions-in $(MENTION_FILES)"; fi; \
	    echo "test-manifests: plan $$plan, Kubernetes $$kube"; \
	    (cd $(ROOT) && $(MANIFESTS_VALIDATE) --plan-json $(MANIFESTS_WORK)/$$plan.plan.json \
	      --expect-bundles $$expect --kube-version $$kube $$extra_args) \
	      || { echo "test-manifests: plan $$plan (Kubernetes $$kube) FAILED"; exit 1; }; \
	  done; \
	done; \
	echo "test-manifests: passed in $${SECONDS}s"
