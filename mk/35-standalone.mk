# The repository stands alone: a copy of the tracked files in a temporary directory with nothing
# beside it plans the example and runs the schema and conformance step (ffe-validate --upstream),
# and no tracked file refers to a folder outside the repository (`../shared`).
# Tools (helm, kubernetes-validate, the built binaries) are used from this checkout by absolute path.
TEST_TARGETS += test-standalone
.PHONY: test-standalone

test-standalone: provider-install
	cargo build -q --workspace --bins
	@if git -C $(ROOT) grep -n -e '\.\./shared' -- . ':!mk/35-standalone.mk' ':!docs/contract/DESIGN.md'; then \
	  echo "test-standalone: tracked files refer to ../shared (vendor what is needed into the repo)"; exit 1; fi
	@parent=$$(mktemp -d); trap 'rm -rf "$$parent"' EXIT; copy=$$parent/ffe-ha; mkdir -p $$copy; \
	git -C $(ROOT) ls-files -z | (cd $(ROOT) && xargs -0 tar -cf - --no-recursion) | tar -C $$copy -xf -; \
	cp -r $(ENV_HA)/terraform.d $$copy/terraform/environments/ha/; \
	[ "$$(ls -A $$parent)" = ffe-ha ] || { echo "test-standalone: the copy has siblings"; exit 1; }; \
	cd $$copy/terraform/environments/ha && terraform init -input=false -backend=false -no-color >/dev/null \
	  && terraform plan -input=false -refresh=false -no-color -var-file=terraform.tfvars.example -out=$$parent/p.tfplan >$$parent/plan.txt 2>&1 \
	  || { cat $$parent/plan.txt; echo "test-standalone: plan in the copy FAILED"; exit 1; }; \
	terraform show -json $$parent/p.tfplan > $$parent/p.json; \
	cd $$copy && $(ROOT)/target/debug/ffe-validate terraform-plan --plan-json $$parent/p.json \
	  --crds upstream/crds/helm-controller --upstream upstream --kube-version 1.35 >$$parent/validate.txt 2>&1 \
	  || { cat $$parent/validate.txt; echo "test-standalone: schema step in the copy FAILED"; exit 1; }; \
	tail -n1 $$parent/validate.txt; echo "test-standalone: a copy with nothing beside it plans and validates"
