#!/usr/bin/env bash
# Proves that planning from empty state opens no network connection at all.
#
# Plans (1) terraform.tfvars.example and (2) the seed's terraform.tfvars block ALONE (cut from the
# seed README, without our added section) inside a fresh network namespace that has only `lo` up:
# any dial to a real address fails there with "network is unreachable". On top of that, strace
# records every connect(2) of terraform and the provider; any IPv4/IPv6 connect to a non-loopback
# address fails the test even if the caller swallowed the error. It also checks that the example
# starts with the seed's block byte for byte.
#
# Usage: tests/offline-plan.sh <seed HA_README.md>     (run from anywhere; needs root, terraform
# init already done in the environment directory). Leaves nothing behind, even on failure.
set -euo pipefail

seed_readme=${1:?usage: $0 <path to seed HA_README.md>}
env_dir=$(cd "$(dirname "$0")/.." && pwd)
ns="ffe-tfplan-$$"
work=$(mktemp -d)

cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

fail() {
  echo "offline-plan: FAIL: $*" >&2
  exit 1
}

# Leftovers of a crashed earlier run (other PIDs) are removed first.
for old in $(ip netns list | awk '/^ffe-tfplan-[0-9]+/ {print $1}'); do
  pid=${old#ffe-tfplan-}
  kill -0 "$pid" 2>/dev/null || ip netns del "$old" 2>/dev/null || true
done

# The seed's block: the lines between "```hcl" and "```" under "## Configuration (terraform.tfvars)".
awk '/^## Configuration \(terraform.tfvars\)/ {s = 1}
     s && /^```hcl$/ {b = 1; next}
     b && /^```$/ {exit}
     b {print}' "$seed_readme" >"$work/seed.tfvars"
[ -s "$work/seed.tfvars" ] || fail "could not find the terraform.tfvars block in $seed_readme"

seed_bytes=$(wc -c <"$work/seed.tfvars")
head -c "$seed_bytes" "$env_dir/terraform.tfvars.example" >"$work/example-head"
cmp -s "$work/seed.tfvars" "$work/example-head" ||
  fail "terraform.tfvars.example does not start with the seed's block byte for byte (diff $work/seed.tfvars)"
grep -q '^# ---- Added by ffe-ha ----$' "$env_dir/terraform.tfvars.example" ||
  fail "terraform.tfvars.example lacks the '# ---- Added by ffe-ha ----' marker"
echo "offline-plan: terraform.tfvars.example starts with the seed's block ($seed_bytes bytes) unchanged"

ip netns add "$ns"
ip -n "$ns" link set lo up
links=$(ip -n "$ns" -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$links" = "lo " ] || fail "namespace $ns has unexpected links: $links"
# Prove the namespace really is cut off: dialing a seed address must fail at once.
if ip netns exec "$ns" bash -c 'exec 3<>/dev/tcp/10.0.1.10/22' 2>"$work/dial.err"; then
  fail "a TCP connect to 10.0.1.10:22 succeeded inside $ns; the namespace is not isolated"
fi
grep -qi 'unreachable' "$work/dial.err" || fail "expected 'network is unreachable' in $ns, got: $(cat "$work/dial.err")"

plan_offline() { # $1 = label, $2 = var file
  local label=$1 varfile=$2 trace="$work/$1.strace"
  echo "offline-plan: planning $label inside network namespace $ns (only lo up)"
  if ! ip netns exec "$ns" env CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null \
    strace -f -qq -e trace=connect -o "$trace" \
    terraform -chdir="$env_dir" plan -input=false -no-color -lock=false \
    -var-file="$varfile" -out="$work/$label.tfplan" >"$work/$label.out" 2>&1; then
    cat "$work/$label.out" >&2
    fail "terraform plan of $label failed inside the empty network namespace"
  fi
  local hosts clusters
  hosts=$(grep -cE '^  # ffe_host\.(master|worker)\[[0-9]+\] will be created$' "$work/$label.out" || true)
  clusters=$(grep -cE '^  # ffe_k3s_cluster\.this will be created$' "$work/$label.out" || true)
  if [ "$hosts" != 6 ] || [ "$clusters" != 1 ] ||
    ! grep -qE '^Plan: [0-9]+ to add, 0 to change, 0 to destroy\.$' "$work/$label.out"; then
    cat "$work/$label.out" >&2
    fail "plan of $label should create 6 ffe_host and 1 ffe_k3s_cluster, got $hosts and $clusters"
  fi
  if grep -qi 'network is unreachable' "$work/$label.out"; then
    fail "plan of $label tried to reach the network (see above)"
  fi
  # Every connect(2) to an IPv4/IPv6 address other than loopback is a failure.
  local dials
  dials=$(grep -E 'connect\(.*(AF_INET|AF_INET6)' "$trace" |
    grep -vE 'inet_addr\("127\.0\.0\.1"\)|inet_pton\(AF_INET6, "::1"' || true)
  if [ -n "$dials" ]; then
    echo "$dials" >&2
    fail "plan of $label attempted network connections (strace above)"
  fi
  echo "offline-plan: $label planned with $(grep -c 'connect(' "$trace" || true) connect() calls, none to a network address"
}

plan_offline example "$env_dir/terraform.tfvars.example"
plan_offline seed-only "$work/seed.tfvars"

# The seed's past-EOL versions must plan with warnings that name the supported versions.
flat=$(tr -s '\n ' '  ' <"$work/seed-only.out")
for want in 'Warning: Check block assertion failed' \
  'kubernetes_version = "v1.29" is not a supported Kubernetes minor' \
  'vault_version = "1.17" is not a supported Vault release' \
  'Supported as of 2026-11: v1.' 'Supported as of 2026-11: 1.' \
  'Warning: SSH host keys are not pinned'; do
  case "$flat" in
  *"$want"*) ;;
  *) fail "seed-only plan lacks the warning text: $want" ;;
  esac
done
echo "offline-plan: seed-only plan warns that v1.29 and Vault 1.17 are unsupported (naming the supported versions) and that host keys are not pinned"
echo "offline-plan: OK"
