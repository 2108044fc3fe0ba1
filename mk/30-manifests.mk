# Platform manifests: plan the HA environment with the example tfvars, take every planned
# `ffe_manifests` resource from `terraform show -json`, and validate each document with
# ffe-validate (Kubernetes schemas via kubernetes-validate, upstream CRDs in ../shared/crds).
# Two plans, both from terraform.tfvars.example in a private copy of terraform/ (with monitoring/
# and helm/, which modules read; it never shares .terraform/ with other targets):
#   example  as shipped: the platform bundles + monitoring;
#   app      the same with -var deploy_app=true: + the app bundle (HelmChart of charts/ffe-backend.tgz,
#            valuesContent checked against helm/ffe-backend/values.schema.json).
# Each plan is validated at its own kubernetes_version and at the newest supported minor.
TEST_TARGETS += test-manifests
.PHONY: test-manifests
MANIFESTS_WORK     := $(ROOT)/target/test-manifests
MANIFESTS_ENV      := $(MANIFESTS_WORK)/terraform/environments/ha
MANIFESTS_BUNDLES  := namespaces,cni,vip,storage,edge,monitoring
MANIFESTS_KUBE_MAX := 1.37
MANIFESTS_VALIDATE := target/debug/ffe-validate terraform-plan --crds $(SHARED)/crds \
  --values-schema ffe-backend=$(ROOT)/helm/ffe-backend/values.schema.json

test-manifests: provider-install app-chart
	@SECONDS=0; \
	rm -rf $(MANIFESTS_WORK) && mkdir -p $(MANIFESTS_WORK); \
	tar -C $(ROOT) --exclude=.terraform --exclude=.terraform.lock.hcl --exclude='*.tfstate*' \
	  --exclude=tfplan -cf - terraform monitoring helm | tar -C $(MANIFESTS_WORK) -xf -; \
	cd $(MANIFESTS_ENV) && terraform init -input=false -backend=false -no-color >/dev/null; \
	for plan in example app; do \
	  extra=; expect=$(MANIFESTS_BUNDLES); \
	  if [ $$plan = app ]; then extra='-var=deploy_app=true'; expect=$$expect,app; fi; \
	  terraform plan -input=false -refresh=false -no-color -var-file=terraform.tfvars.example $$extra \
	    -out=$(MANIFESTS_WORK)/$$plan.tfplan >$(MANIFESTS_WORK)/$$plan.plan.txt 2>&1 \
	    || { cat $(MANIFESTS_WORK)/$$plan.plan.txt; echo "test-manifests: terraform plan ($$plan) FAILED"; exit 1; }; \
	  terraform show -json $(MANIFESTS_WORK)/$$plan.tfplan > $(MANIFESTS_WORK)/$$plan.plan.json; \
	  for kube in plan $(MANIFESTS_KUBE_MAX); do \
	    kv=; [ $$kube = plan ] || kv="--kube-version $$kube"; \
	    echo "test-manifests: plan $$plan, Kubernetes $$kube"; \
	    (cd $(ROOT) && $(MANIFESTS_VALIDATE) --plan-json $(MANIFESTS_WORK)/$$plan.plan.json \
	      --expect-bundles $$expect $$kv) || { echo "test-manifests: plan $$plan (Kubernetes $$kube) FAILED"; exit 1; }; \
	  done; \
	done; \
	echo "test-manifests: passed in $${SECONDS}s"
