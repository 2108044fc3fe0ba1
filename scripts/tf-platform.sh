#!/usr/bin/env bash
# Prints the platform Terraform on this machine looks for providers under, in Terraform's own
# naming (linux_amd64, linux_arm64, darwin_arm64, ...): `make provider-install` installs the
# provider into terraform.d/plugins/.../<version>/<platform>/ (docs/adr/0009-provider-host-platform.md).
#
# Asks terraform itself (`terraform version -json` prints "platform"); without a terraform on PATH
# it derives the name from `uname -s` / `uname -m`, and fails on a machine it cannot name.
set -euo pipefail

if command -v terraform >/dev/null 2>&1; then
  platform=$(CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null terraform version -json 2>/dev/null |
    sed -n 's/^ *"platform": *"\([a-z0-9_]*\)".*/\1/p' || true)
  if [ -n "$platform" ]; then
    echo "$platform"
    exit 0
  fi
fi

case "$(uname -s)" in
Linux) os=linux ;;
Darwin) os=darwin ;;
FreeBSD) os=freebsd ;;
OpenBSD) os=openbsd ;;
*)
  echo "tf-platform: unknown OS '$(uname -s)'; run with a terraform on PATH (terraform version -json names the platform)" >&2
  exit 1
  ;;
esac
case "$(uname -m)" in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
armv6l | armv7l | arm) arch=arm ;;
i386 | i686) arch=386 ;;
*)
  echo "tf-platform: unknown CPU '$(uname -m)'; run with a terraform on PATH (terraform version -json names the platform)" >&2
  exit 1
  ;;
esac
echo "${os}_${arch}"
