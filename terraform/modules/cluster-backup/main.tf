# Cluster backups that belong to no layer (ADR 0010: short scripts in pinned images):
#   - ffe-secrets-export: daily, every Secret and ConfigMap of every namespace, as one tar of
#     <namespace>.json files (each a v1 List, ready for `kubectl apply -f`), encrypted with age to
#     age_recipient (the private key never enters the cluster), written to the backup share as
#     secrets-<UTC stamp>.tar.age (first as .partial, renamed when complete), exports older than
#     backup_retention_days deleted after a successful one. Left out on purpose: Secrets of type
#     kubernetes.io/service-account-token (legacy tokens signed by this cluster's key for
#     ServiceAccounts with this cluster's UIDs: the token controller re-creates them, and a
#     restored one is useless elsewhere and a live credential here) and the ConfigMaps
#     kube-root-ca.crt (kube-controller-manager publishes the cluster's CA into every namespace;
#     restoring an old one into a rebuilt cluster would hand pods the wrong CA until it is fixed).
#     Server-set fields (uid, resourceVersion, managedFields, ...) and ownerReferences are
#     dropped: a restored object must be creatable, and an ownerReference to an owner whose UID no
#     longer exists would make the garbage collector delete it. Runbook: docs/disaster-recovery.md.
#   - ffe-backup-offsite (offsite != null): rsync over SSH of the whole backup share (read-only)
#     to offsite.target, after the nightly backups; nothing is deleted on the target.
# The export's RBAC: get/list of secrets and configmaps cluster-wide, nothing else.
#
# Images: see environments/ha/pins.tf. What they contain could not be checked here (no registry,
# no container runtime): the export's script needs bash, date/mv/stat/rm/mkdir (coreutils), find,
# GNU tar, jq, kubectl and age; the copy needs bash, install (coreutils), ssh and rsync.

locals {
  labels = { "app.kubernetes.io/part-of" = "ffe-ha", "app.kubernetes.io/component" = "cluster-backup" }

  # Both CronJobs: UTC schedules, never two runs at once, a missed run still starts within the hour.
  cronjob_policy = {
    timeZone                   = "Etc/UTC"
    concurrencyPolicy          = "Forbid"
    startingDeadlineSeconds    = 3600
    successfulJobsHistoryLimit = 3
    failedJobsHistoryLimit     = 3
  }

  # checkov skips on both CronJobs, each with its reason (read by checkov from the manifest)
  checkov_pinning = {
    "checkov.io/skip1" = "CKV_K8S_15=IfNotPresent on purpose: a nightly backup must run while the registry is unreachable"
    "checkov.io/skip2" = "CKV_K8S_43=pinned by tag in environments/ha/pins.tf; no digest could be read on the build machine"
  }

  export_name   = "ffe-secrets-export"
  export_labels = merge(local.labels, { "app.kubernetes.io/name" = local.export_name })
  export_files  = "secrets-*.tar.age"

  # The plaintext is staged in a memory-backed emptyDir (never on a node's disk), removed on exit.
  export_script = <<-SH
    set -euo pipefail
    umask 077
    export HOME=/work # kubectl's cache; the root filesystem is read-only
    stage=/work/export
    out="/backups/secrets-$(date -u +%Y%m%dT%H%M%SZ).tar.age"
    trap 'rm -rf "$stage" "$out.partial"' EXIT
    mkdir -p "$stage/ns"
    # The only two API calls (the ServiceAccount may get/list secrets and configmaps, nothing else).
    kubectl get secrets --all-namespaces --field-selector type!=kubernetes.io/service-account-token -o json > "$stage/secrets.json"
    kubectl get configmaps --all-namespaces -o json > "$stage/configmaps.json"
    jq -s 'def clean(k): .apiVersion = "v1" | .kind = k
      | del(.metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp, .metadata.generation,
            .metadata.managedFields, .metadata.selfLink, .metadata.ownerReferences,
            .metadata.deletionTimestamp, .metadata.deletionGracePeriodSeconds,
            .metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"])
      | if .metadata.annotations == {} then del(.metadata.annotations) else . end;
      [(.[0].items[] | clean("Secret")),
       (.[1].items[] | select(.metadata.name != "kube-root-ca.crt") | clean("ConfigMap"))]
      | sort_by(.metadata.namespace, .kind, .metadata.name)' \
      "$stage/secrets.json" "$stage/configmaps.json" > "$stage/all.json"
    rm -f "$stage/secrets.json" "$stage/configmaps.json"
    namespaces="$(jq -r '[.[].metadata.namespace] | unique | .[]' "$stage/all.json")"
    [ -n "$namespaces" ] || { echo "secrets export: the API returned no Secret and no ConfigMap" >&2; exit 1; }
    for ns in $namespaces; do
      jq --arg ns "$ns" '{apiVersion: "v1", kind: "List", items: [.[] | select(.metadata.namespace == $ns)]}' \
        "$stage/all.json" > "$stage/ns/$ns.json"
    done
    summary="$(jq -r '"\([.[] | select(.kind == "Secret")] | length) Secrets, \([.[] | select(.kind == "ConfigMap")] | length) ConfigMaps"' "$stage/all.json")"
    (cd "$stage/ns" && tar -cf - -- *.json) | age -r '${coalesce(var.age_recipient, "-")}' -o "$out.partial"
    # encrypted: readable by the off-site copy whatever user the share maps it to
    chmod 0644 "$out.partial"
    mv "$out.partial" "$out"
    echo "secrets export: wrote $out ($(stat -c %s "$out") bytes): $summary in $(echo "$namespaces" | wc -l) namespaces"
    find /backups -maxdepth 1 -type f \( -name '${local.export_files}' -o -name '${local.export_files}.partial' \) \
      -mmin +${var.backup_retention_days * 1440} -print -delete
  SH

  export_docs = var.age_recipient == null ? [] : [for d in [
    {
      apiVersion = "v1"
      kind       = "PersistentVolumeClaim"
      metadata   = { name = var.claim.name, namespace = var.namespace, labels = local.labels }
      spec = {
        storageClassName = var.backup_storage_class
        accessModes      = ["ReadWriteMany"]
        resources        = { requests = { storage = var.claim.size } }
      }
    },
    { apiVersion = "v1", kind = "ServiceAccount", metadata = { name = local.export_name, namespace = var.namespace, labels = local.labels }, automountServiceAccountToken = false },
    {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "ClusterRole"
      metadata   = { name = local.export_name, labels = local.labels }
      rules      = [{ apiGroups = [""], resources = ["configmaps", "secrets"], verbs = ["get", "list"] }]
    },
    {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "ClusterRoleBinding"
      metadata = {
        name        = local.export_name
        labels      = local.labels
        annotations = { "checkov.io/skip1" = "CKV2_K8S_5=reading every Secret is this export's purpose; get/list only, one ServiceAccount, no other right" }
      }
      roleRef  = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = local.export_name }
      subjects = [{ kind = "ServiceAccount", name = local.export_name, namespace = var.namespace }]
    },
    {
      apiVersion = "batch/v1"
      kind       = "CronJob"
      metadata = {
        name        = local.export_name
        namespace   = var.namespace
        labels      = local.export_labels
        annotations = merge(local.checkov_pinning, { "checkov.io/skip3" = "CKV_K8S_38=the job's only work is reading the API with kubectl (in-cluster token)" })
      }
      spec = merge(local.cronjob_policy, {
        schedule = var.export_schedule
        jobTemplate = {
          metadata = { labels = local.export_labels }
          spec = {
            backoffLimit          = 2
            activeDeadlineSeconds = 1800
            template = {
              metadata = { labels = local.export_labels }
              spec = {
                serviceAccountName = local.export_name
                # kubectl's in-cluster configuration reads the token from the standard path
                automountServiceAccountToken = true
                restartPolicy                = "Never"
                securityContext              = { runAsNonRoot = true, runAsUser = 65532, runAsGroup = 65532, fsGroup = 65532, seccompProfile = { type = "RuntimeDefault" } }
                containers = [{
                  name            = "export"
                  image           = var.export_image
                  imagePullPolicy = "IfNotPresent"
                  command         = ["/bin/bash", "-c", local.export_script]
                  securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true, capabilities = { drop = ["ALL"] } }
                  resources       = { requests = { cpu = "50m", memory = "128Mi" }, limits = { cpu = "1", memory = "512Mi" } }
                  volumeMounts = [
                    { name = "backups", mountPath = "/backups" },
                    { name = "work", mountPath = "/work" },
                  ]
                }]
                volumes = [
                  { name = "backups", persistentVolumeClaim = { claimName = var.claim.name } },
                  # tmpfs: the plaintext export never reaches a disk; counts against the memory limit
                  { name = "work", emptyDir = { medium = "Memory", sizeLimit = "256Mi" } },
                ]
              }
            }
          }
        }
      })
    },
  ] : yamlencode(d)]

  # ---- off-site copy -------------------------------------------------------------------------
  # var.offsite with placeholders when null (both branches of a conditional are type-checked)
  o              = merge({ target = "-", known_hosts = "-", ssh_key_secret = "-", ssh_port = 22, schedule = "-" }, var.offsite == null ? {} : var.offsite)
  offsite_name   = "ffe-backup-offsite"
  offsite_labels = merge(local.labels, { "app.kubernetes.io/name" = local.offsite_name })
  # No --delete: a share wiped by mistake or by an attacker must not wipe the off-site copy too;
  # the target keeps what it has (its own retention is the target's business).
  offsite_script = <<-SH
    set -euo pipefail
    umask 077
    export HOME=/tmp
    install -d -m 700 /tmp/.ssh
    install -m 600 /etc/offsite/ssh-privatekey /tmp/.ssh/id
    rsync --archive --partial-dir=.rsync-partial --stats \
      -e "ssh -i /tmp/.ssh/id -p ${local.o.ssh_port} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/offsite-known-hosts/known_hosts" \
      /share/ '${local.o.target}/'
    echo "backup off-site: copied the backup share to ${local.o.target}"
  SH

  offsite_docs = var.offsite == null ? [] : [for d in [
    { apiVersion = "v1", kind = "ServiceAccount", metadata = { name = local.offsite_name, namespace = var.namespace, labels = local.labels }, automountServiceAccountToken = false },
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "${local.offsite_name}-known-hosts", namespace = var.namespace, labels = local.labels }, data = { known_hosts = "${trimspace(local.o.known_hosts)}\n" } },
    # The namespace's default-deny allows no SSH out: only this job's pods, only to the SSH port.
    {
      apiVersion = "networking.k8s.io/v1"
      kind       = "NetworkPolicy"
      metadata   = { name = "allow-${local.offsite_name}", namespace = var.namespace, labels = local.labels }
      spec = {
        podSelector = { matchLabels = { "app.kubernetes.io/name" = local.offsite_name } }
        policyTypes = ["Egress"]
        egress      = [{ ports = [{ protocol = "TCP", port = local.o.ssh_port }] }]
      }
    },
    {
      apiVersion = "batch/v1"
      kind       = "CronJob"
      metadata = {
        name      = local.offsite_name
        namespace = var.namespace
        labels    = local.offsite_labels
        annotations = merge(local.checkov_pinning, {
          "checkov.io/skip3" = "CKV_K8S_23=reads the backups every job writes as its own user (etcd: root, 0600)"
          "checkov.io/skip4" = "CKV_K8S_40=runs as root to read every backup, see CKV_K8S_23"
          "checkov.io/skip5" = "CKV_K8S_25=DAC_READ_SEARCH only (all others dropped): read files of other users, never write them"
        })
      }
      spec = merge(local.cronjob_policy, {
        schedule = local.o.schedule
        jobTemplate = {
          metadata = { labels = local.offsite_labels }
          spec = {
            backoffLimit          = 2
            activeDeadlineSeconds = 21600
            template = {
              metadata = { labels = local.offsite_labels }
              spec = {
                serviceAccountName           = local.offsite_name
                automountServiceAccountToken = false
                restartPolicy                = "Never"
                # root with DAC_READ_SEARCH only: reads the files every backup job writes as its own uid
                securityContext = { runAsNonRoot = false, runAsUser = 0, runAsGroup = 0, seccompProfile = { type = "RuntimeDefault" } }
                containers = [{
                  name            = "rsync"
                  image           = var.offsite_image
                  imagePullPolicy = "IfNotPresent"
                  command         = ["/bin/bash", "-c", local.offsite_script]
                  securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true, capabilities = { drop = ["ALL"], add = ["DAC_READ_SEARCH"] } }
                  resources       = { requests = { cpu = "50m", memory = "64Mi" }, limits = { cpu = "1", memory = "512Mi" } }
                  volumeMounts = [
                    { name = "share", mountPath = "/share", readOnly = true },
                    { name = "ssh-key", mountPath = "/etc/offsite", readOnly = true },
                    { name = "known-hosts", mountPath = "/etc/offsite-known-hosts", readOnly = true },
                    { name = "tmp", mountPath = "/tmp" },
                  ]
                }]
                volumes = [
                  # the whole share as every node mounts it (backup_nfs_mount), read-only
                  { name = "share", hostPath = { path = trimsuffix(var.backup_mount, "/"), type = "Directory" } },
                  { name = "ssh-key", secret = { secretName = local.o.ssh_key_secret, defaultMode = 256, items = [{ key = "ssh-privatekey", path = "ssh-privatekey" }] } },
                  { name = "known-hosts", configMap = { name = "${local.offsite_name}-known-hosts" } },
                  { name = "tmp", emptyDir = { medium = "Memory", sizeLimit = "16Mi" } },
                ]
              }
            }
          }
        }
      })
    },
  ] : yamlencode(d)]
}
