# IaC scan with checkov (docs/security.md): scripts/checkov-scan.sh prints each scan's
# passed/failed/skipped counts and a total, and fails on any failed check. An exception is an inline
# skip on the object itself, with its reason: annotation `checkov.io/skipN: CKV_ID=reason` in the
# Terraform module (or chart template) that renders the object, `#checkov:skip=CKV_ID:reason` in a
# Terraform resource. Scanned:
#   terraform         terraform/ (framework terraform). It declares only resources of our own provider
#                     (ffe_*), for which checkov has no policy: 0 checks today, scanned so that a
#                     resource of another provider is checked the day one appears;
#   manifests-PLAN    every document of every planned `ffe_manifests` bundle of the full and openbao
#                     plans that test-manifests writes (target/test-manifests/PLAN.plan.json);
#   helm-ffe-backend  `helm template` of helm/ffe-backend with each CHART_VALUES_F file (mk/40-helm.mk).
# Not scanned: the upstream charts the HelmChart objects install (ffe-validate renders them in
# test-manifests). Their templates are not ours to change; the values we give them are checked there
# (values keys and schemas, versions, conformance).
# `make checkov-scan` scans again the plans test-manifests left, without planning anew.
TEST_TARGETS += test-checkov
.PHONY: test-checkov checkov-scan
CHECKOV       := $(TOOLS)/checkov-venv/bin/checkov
CHECKOV_PLANS := full openbao
# checkov's JSON reports and the documents it scanned (kept for reading after a failure)
CHECKOV_WORK  := $(ROOT)/target/checkov

test-checkov: test-manifests
	@$(MAKE) --no-print-directory checkov-scan

checkov-scan:
	@rm -rf $(CHECKOV_WORK) && mkdir -p $(CHECKOV_WORK)/helm-ffe-backend; \
	for v in $(CHART_VALUES_F); do \
	  $(HELM4) template ffe $(CHART_DIR) -n ffe -f $$v $(HELM_MONITORING_APIS) \
	    > $(CHECKOV_WORK)/helm-ffe-backend/$$(basename $$v .yaml).yaml; \
	done; \
	for plan in $(CHECKOV_PLANS); do [ -s $(MANIFESTS_WORK)/$$plan.plan.json ] \
	  || { echo "checkov-scan: no $(MANIFESTS_WORK)/$$plan.plan.json: run make test-manifests"; exit 1; }; done; \
	$(ROOT)/scripts/checkov-scan.sh $(CHECKOV) $(CHECKOV_WORK) terraform:terraform:$(ROOT)/terraform \
	  $(foreach p,$(CHECKOV_PLANS),manifests-$(p):plan:$(MANIFESTS_WORK)/$(p).plan.json) \
	  helm-ffe-backend:kubernetes:$(CHECKOV_WORK)/helm-ffe-backend
