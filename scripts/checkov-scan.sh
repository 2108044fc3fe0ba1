#!/usr/bin/env bash
# checkov over several inputs (`make test-checkov`, mk/45-checkov.mk; docs/security.md), one scan
# each: prints every failed check and each scan's passed/failed/skipped counts, then the total.
# Fails on any failed check, any file or document checkov could not read, and any inline skip
# without a reason (checkov itself accepts a bare check ID as a skip).
#
# Usage: scripts/checkov-scan.sh CHECKOV WORK SCAN...
#   WORK  directory for checkov's JSON reports (WORK/NAME.json) and the extracted plan documents
#   SCAN  NAME:FRAMEWORK:DIR  checkov --framework FRAMEWORK -d DIR
#         NAME:plan:FILE      every document of every planned `ffe_manifests` bundle of FILE
#                             (`terraform show -json` of a plan), as the Kubernetes objects the
#                             provider would write: one file per bundle file, WORK/NAME/<bundle>/<file>
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 CHECKOV WORK NAME:FRAMEWORK:DIR|NAME:plan:FILE..." >&2; exit 2; }
checkov=$1
work=$2
shift 2
mkdir -p "$work"
here() { echo "${1#"$PWD"/}"; } # a path as shown: relative to the current directory when below it

# The bundles' files NUL-separated (name, content, ...): any byte but NUL may be in a manifest.
# shellcheck disable=SC2016 # a jq program: its $vars are jq's, not the shell's
plan_files='def modules: ., (.child_modules[]? | modules);
  .planned_values.root_module | modules | .resources[]?
  | select(.mode == "managed" and .type == "ffe_manifests")
  | .values as $v | ($v.manifests // {}) | to_entries[]
  | "\($v.bundle)/\(.key | gsub("/"; "_"))\u0000\(.value)\u0000"'

# An inline skip must say why: an annotation value `CKV_ID=reason` (checkov.io/skipN, also the
# bridgecrew.io and cortex.io keys checkov reads), a Terraform comment `checkov:skip=CKV_ID:reason`;
# a reason is two words at least. Prints the offending lines.
unexplained() { # FRAMEWORK DIR
  if [ "$1" = terraform ]; then
    grep -rnE --include='*.tf' --exclude-dir=.terraform '(checkov|bridgecrew|cortex):skip=' "$2" \
      | grep -vE '(checkov|bridgecrew|cortex):skip= *[A-Za-z0-9_,-]+ *: *[^ ]+ +[^ ]+' || true
  else
    grep -rnE '(checkov|bridgecrew|cortex)\.io/skip' "$2" \
      | grep -vE '\.io/skip[^:]*"?: *"?CKV2?_[A-Z0-9]+_[0-9]+= *[^ "]+ +[^ "]+' || true
  fi
}

total_passed=0 total_failed=0 total_skipped=0 broken=0
for scan in "$@"; do
  name=${scan%%:*}
  rest=${scan#*:}
  framework=${rest%%:*}
  input=${rest#*:}
  dir=$input
  if [ "$framework" = plan ]; then
    framework=kubernetes
    dir=$work/$name
    rm -rf "$dir" && mkdir -p "$dir"
    jq -j "$plan_files" "$input" | while IFS= read -r -d '' file && IFS= read -r -d '' body; do
      mkdir -p "$dir/${file%/*}" && printf '%s\n' "$body" >"$dir/$file"
    done
    [ -n "$(find "$dir" -type f -print -quit)" ] \
      || { echo "checkov: $name: no ffe_manifests document in $input"; exit 1; }
  fi
  if [ "$framework" = terraform ]; then
    files=$(find "$dir" -type f -name '*.tf' -not -path '*/.terraform/*' | wc -l)
  else
    files=$(find "$dir" -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | wc -l)
  fi
  shown="$(here "$dir") ($files files)"
  [ "$dir" = "$input" ] || shown="$(here "$input") -> $shown"
  json=$work/$name.json
  rc=0
  # Kubernetes at LOG_LEVEL=DEBUG: checkov drops a YAML file it cannot parse, and a document with a
  # `name` that is not a short string, with a debug line only (no parsing error, no exit code); read
  # below. Terraform's warnings (expressions it cannot evaluate) are not findings.
  level=ERROR
  [ "$framework" = terraform ] || level=DEBUG
  LOG_LEVEL=$level "$checkov" --skip-download --framework "$framework" -d "$dir" --compact -o json \
    >"$json" 2>"$work/$name.err" || rc=$?
  if [ "$rc" -gt 1 ] || ! jq -e . "$json" >/dev/null 2>&1; then
    tail -n 40 "$work/$name.err" >&2 # the whole log: WORK/NAME.err
    echo "checkov: $name: checkov did not run to the end (exit $rc)"
    exit 1
  fi
  # One framework per run: one report {check_type, results, summary}; nothing scanned: the bare summary.
  read -r passed failed skipped parse_errors resources < <(jq -r '[.] | flatten | map(.summary // .)
    | [(map(.passed) | add), (map(.failed) | add), (map(.skipped) | add),
       (map(.parsing_errors) | add), (map(.resource_count) | add)] | map(. // 0) | @tsv' "$json")
  jq -r --arg dir "$(here "$dir")" '[.] | flatten | .[] | .results.failed_checks[]?
    | "  FAILED \(.check_id) \(.check_name): \(.resource) (\($dir)\(.file_path):\(.file_line_range[0]))"' "$json"
  jq -r '[.] | flatten | .[] | .results.parsing_errors[]? | "  NOT PARSED \(.)"' "$json"
  # (an empty document, "not a dict, but <class 'NoneType'>", holds nothing to scan)
  dropped=$(grep -E 'Cannot read file contents|is not a valid k8s template' "$work/$name.err" \
    | grep -v "NoneType" | sed 's/^.*\] *//' || true)
  [ -z "$dropped" ] || printf '  NOT SCANNED %s\n' "${dropped//$'\n'/$'\n  NOT SCANNED '}"
  [ -z "$dropped" ] || parse_errors=$((parse_errors + $(echo "$dropped" | wc -l)))
  bare=$(unexplained "$framework" "$dir")
  [ -z "$bare" ] || printf '  SKIP WITHOUT REASON %s\n' "${bare//$'\n'/$'\n  SKIP WITHOUT REASON '}"
  echo "checkov: $name [$framework] $shown: passed $passed, failed $failed, skipped $skipped, parsing errors $parse_errors ($resources resources)"
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  total_skipped=$((total_skipped + skipped))
  if [ "$failed" -gt 0 ] || [ "$parse_errors" -gt 0 ] || [ -n "$bare" ] || [ "$rc" -ne 0 ]; then
    broken=1
  fi
done
echo "checkov: total: passed $total_passed, failed $total_failed, skipped $total_skipped"
if [ "$broken" -ne 0 ]; then
  echo "checkov: FAILED: fix each failed check, or skip it on the object with its reason (docs/security.md)"
  exit 1
fi
