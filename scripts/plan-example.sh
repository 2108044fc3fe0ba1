#!/usr/bin/env bash
# `make plan`: plans terraform/environments/ha/terraform.tfvars.example ALONE, from empty state.
#
# Terraform loads terraform.tfvars, terraform.tfvars.json, *.auto.tfvars and *.auto.tfvars.json
# from the directory it runs in by itself, on top of any -var-file: planning in the environment
# would silently merge an operator's terraform.tfvars into "the example". So the plan runs in a
# scratch copy: the repository's layout rebuilt out of symbolic links (the relative paths
# ../../modules, ../../../monitoring, ./terraform.d, ./charts resolve as in the repository), minus
# those files and minus the environment's local working files (.terraform, lock file, state,
# tfplan, kubeconfigs). The real environment is only read; nothing in it is written or removed.
#
# Usage: scripts/plan-example.sh [-C repo] [-o scratch] [-- extra `terraform plan` arguments]
#   repo     the repository (default: this one); its terraform.d must hold the built provider
#            (`make provider-install`)
#   scratch  the scratch copy, rebuilt on every run (default: <repo>/target/plan-example)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=
while [ $# -gt 0 ]; do
  case $1 in
  -C) repo=$(cd "$2" && pwd) && shift 2 ;;
  -o) scratch=$2 && shift 2 ;;
  --) shift && break ;;
  *) echo "usage: $0 [-C repo] [-o scratch] [-- terraform plan args]" >&2 && exit 2 ;;
  esac
done
scratch=${scratch:-$repo/target/plan-example}
rel=terraform/environments/ha
env_dir=$repo/$rel
marker=.ffe-plan-example-scratch

[ -f "$env_dir/terraform.tfvars.example" ] || {
  echo "plan-example: $env_dir/terraform.tfvars.example not found" >&2
  exit 1
}

# Only ever remove a directory this script made.
if [ -e "$scratch" ]; then
  [ -f "$scratch/$marker" ] || {
    echo "plan-example: $scratch exists and is not a scratch copy made by this script; not touching it" >&2
    exit 1
  }
  rm -rf "$scratch"
fi
mkdir -p "$scratch"
: >"$scratch/$marker"
scratch=$(cd "$scratch" && pwd)

shopt -s nullglob dotglob

auto_loaded() { # file names Terraform reads without being asked
  case $1 in
  terraform.tfvars | terraform.tfvars.json | *.auto.tfvars | *.auto.tfvars.json) return 0 ;;
  esac
  return 1
}
local_working_file() { # the environment's own working files: never part of the example's plan
  case $1 in
  .terraform | .terraform.lock.hcl | *.tfstate | *.tfstate.* | tfplan | *.tfplan | kubeconfig*) return 0 ;;
  esac
  return 1
}

# Mirror: at each level of terraform/environments/ha, link every entry but the next level down.
src=$repo dst=$scratch
for part in terraform environments ha ""; do
  for e in "$src"/*; do
    name=${e##*/}
    case $name in .git | target | tools | "$marker") continue ;; esac
    [ -n "$part" ] && [ "$name" = "$part" ] && continue
    if [ -z "$part" ]; then # the environment itself
      auto_loaded "$name" && continue
      local_working_file "$name" && continue
    fi
    ln -s "$e" "$dst/$name"
  done
  [ -z "$part" ] && break
  src=$src/$part dst=$dst/$part
  mkdir -p "$dst"
done
work=$scratch/$rel

# Belt and braces: nothing Terraform would auto-load may be in the scratch environment.
for e in "$work"/*; do
  if auto_loaded "${e##*/}"; then
    echo "plan-example: BUG: $e would be auto-loaded in the scratch copy" >&2
    exit 1
  fi
done

skipped=()
for e in "$env_dir"/*; do
  auto_loaded "${e##*/}" && skipped+=("$rel/${e##*/}")
done
note() {
  [ "${#skipped[@]}" -gt 0 ] || return 0
  local f
  for f in "${skipped[@]}"; do
    echo "plan-example: NOT IN THIS PLAN: $f (Terraform auto-loads it in $rel; \`make plan\` plans the example alone)"
  done
  echo "plan-example: to plan your own settings: cd $rel && terraform plan"
}

echo "plan-example: planning $rel/terraform.tfvars.example alone, from empty state, in the scratch copy $work"
echo "plan-example: (paths in the plan that depend on the directory, e.g. kubeconfig_path, point into that copy)"
note
cd "$work"
if ! terraform init -input=false -backend=false -no-color >"$scratch/init.log" 2>&1; then
  cat "$scratch/init.log" >&2
  echo "plan-example: terraform init in $work failed (is the provider built? make provider-install)" >&2
  exit 1
fi
terraform plan -input=false -refresh=false -var-file=terraform.tfvars.example "$@"
echo "plan-example: that was $rel/terraform.tfvars.example alone"
note
