#!/usr/bin/env bash
# Proves that `make plan` (scripts/plan-example.sh) plans terraform.tfvars.example ALONE, even when
# the environment holds files Terraform auto-loads (issue 12, defect 11).
#
# In a throw-away repository (links to this one; the environment a directory of links) it writes a
# terraform.tfvars and a *.auto.tfvars with distinctive bad values for variables the example does not
# set (for those the example sets, -var-file wins; the rest would be merged in silently), then
#   1. control: a plain `terraform plan -var-file=terraform.tfvars.example` there picks them up and
#      fails on them (so this test can fail: the files really are auto-loaded);
#   2. scripts/plan-example.sh on that repository plans (the bad values would fail validation),
#      names both files as left out, and the saved plan holds neither value but the example's;
#   3. both files are still there, unchanged.
# Never touches the checkout's environment (nor an operator's terraform.tfvars in it).
#
# Usage: scripts/test-plan-example.sh     (the provider must be installed: make provider-install)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rel=terraform/environments/ha
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fake=$tmp/repo
env=$fake/$rel
bad_user=TFVARS-MUST-NOT-BE-LOADED # ssh_user: not a Linux user name
bad_timeout=997                    # ssh_connect_timeout_seconds: 1..300

fail() {
  echo "test-plan-example: FAIL: $*" >&2
  exit 1
}

shopt -s nullglob dotglob
mkdir -p "$env"
for e in "$root"/*; do
  case ${e##*/} in terraform | target | tools | .git) continue ;; esac
  ln -s "$e" "$fake/"
done
for e in "$root"/terraform/*; do
  [ "${e##*/}" = environments ] || ln -s "$e" "$fake/terraform/"
done
for e in "$root/$rel"/*; do
  case ${e##*/} in
  # the checkout's working files and auto-loaded settings stay out of the copy
  .terraform | .terraform.lock.hcl | *.tfstate* | tfplan | kubeconfig* | terraform.tfvars | terraform.tfvars.json | *.auto.tfvars | *.auto.tfvars.json) continue ;;
  esac
  ln -s "$e" "$env/"
done
[ -e "$env/terraform.d" ] || fail "no terraform.d in $root/$rel: run make provider-install first"

for v in ssh_user ssh_connect_timeout_seconds; do
  ! grep -qE "^ *$v *=" "$root/$rel/terraform.tfvars.example" || fail "the example sets $v: pick another variable for this test"
done
printf 'ssh_user = "%s"\n' "$bad_user" >"$env/terraform.tfvars"
printf 'ssh_connect_timeout_seconds = %s\n' "$bad_timeout" >"$env/zz-operator.auto.tfvars"
before=$(cd "$env" && sha256sum terraform.tfvars zz-operator.auto.tfvars)

# 1. Control: Terraform itself loads them next to the example.
(cd "$env" && terraform init -input=false -backend=false -no-color >"$tmp/control-init.log" 2>&1) ||
  { cat "$tmp/control-init.log" >&2 && fail "terraform init in the copy failed"; }
if (cd "$env" && terraform plan -input=false -refresh=false -no-color -var-file=terraform.tfvars.example \
  >"$tmp/control.log" 2>&1); then
  fail "control: a plain terraform plan with terraform.tfvars and zz-operator.auto.tfvars present succeeded; expected it to fail on their values"
fi
for want in "$bad_user" "ssh_connect_timeout_seconds = $bad_timeout"; do
  grep -qF "$want" "$tmp/control.log" || { cat "$tmp/control.log" >&2 && fail "control: plain terraform plan did not fail on '$want'"; }
done
echo "test-plan-example: control: plain terraform plan auto-loads terraform.tfvars and *.auto.tfvars (fails on ssh_user = \"$bad_user\", ssh_connect_timeout_seconds = $bad_timeout)"

# 2. The make plan mechanism leaves them out.
"$root/scripts/plan-example.sh" -C "$fake" -o "$tmp/scratch" -- -no-color -out="$tmp/example.tfplan" >"$tmp/plan.log" 2>&1 ||
  { tail -n 60 "$tmp/plan.log" >&2 && fail "plan-example.sh failed with terraform.tfvars present"; }
for want in "NOT IN THIS PLAN: $rel/terraform.tfvars " "NOT IN THIS PLAN: $rel/zz-operator.auto.tfvars " \
  "that was $rel/terraform.tfvars.example alone"; do
  grep -qF "$want" "$tmp/plan.log" || fail "plan-example.sh output lacks: $want"
done
grep -qE '^Plan: [0-9]+ to add, 0 to change, 0 to destroy\.$' "$tmp/plan.log" || fail "plan-example.sh printed no plan"
terraform -chdir="$tmp/scratch/$rel" show -json "$tmp/example.tfplan" >"$tmp/plan.json"
if grep -qF "$bad_user" "$tmp/plan.log" "$tmp/plan.json" ||
  grep -qF "\"ssh_connect_timeout_seconds\":{\"value\":$bad_timeout}" "$tmp/plan.json"; then
  fail "the plan holds a value from the left-out files"
fi
example_name=$(sed -n 's/^cluster_name *= *"\([^"]*\)".*/\1/p' "$root/$rel/terraform.tfvars.example")
grep -qF "\"cluster_name\":{\"value\":\"$example_name\"}" "$tmp/plan.json" ||
  fail "the saved plan's cluster_name is not the example's \"$example_name\""
echo "test-plan-example: make plan's mechanism planned the example alone (cluster_name = \"$example_name\", neither left-out value) and named both left-out files"

# 3. The operator's files are untouched.
if [ ! -f "$env/terraform.tfvars" ] || [ -L "$env/terraform.tfvars" ]; then fail "terraform.tfvars was removed or replaced"; fi
[ "$(cd "$env" && sha256sum terraform.tfvars zz-operator.auto.tfvars)" = "$before" ] || fail "the auto-loaded files were modified"
echo "test-plan-example: terraform.tfvars and zz-operator.auto.tfvars are unchanged"
echo "test-plan-example: OK"
