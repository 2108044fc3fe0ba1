# Terraform environment terraform/environments/ha: formatting, offline init, validate, `terraform test`
# (plan-only runs: the example, every validation rule, every warning), and the no-connection proof
# (the example and the seed's block alone planned inside an empty network namespace, under strace),
# and that `make plan` plans the example alone although a terraform.tfvars / *.auto.tfvars sits in
# the environment (scripts/test-plan-example.sh, in a throw-away copy).
TEST_TARGETS += test-terraform
.PHONY: test-terraform terraform-init-ha
SEED_README ?= $(ROOT)/docs/contract/HA_README.md

# The provider is rebuilt locally, so its checksum changes: drop the lock file and init offline.
terraform-init-ha:
	cd $(ENV_HA) && rm -f .terraform.lock.hcl && terraform init -input=false -backend=false -no-color >/dev/null

test-terraform: provider-install
	terraform fmt -check -recursive terraform
	shellcheck $(ENV_HA)/tests/*.sh $(ROOT)/scripts/*.sh
	$(MAKE) --no-print-directory terraform-init-ha
	cd $(ENV_HA) && terraform validate -no-color
	cd $(ENV_HA) && CHECKPOINT_DISABLE=1 terraform test -no-color -var-file=terraform.tfvars.example
	CHECKPOINT_DISABLE=1 $(ENV_HA)/tests/offline-plan.sh $(SEED_README)
	CHECKPOINT_DISABLE=1 $(ROOT)/scripts/test-plan-example.sh
