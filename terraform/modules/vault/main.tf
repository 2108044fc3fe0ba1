# The Vault HA layer (issue 14): HashiCorp Vault (chart `vault`) or OpenBao (chart `openbao`), both as
# Helm release `vault` in var.namespace through k3s's helm-controller, with the same values:
#   - N Raft members (StatefulSet vault-0..N-1), never two on one node (required anti-affinity),
#     data on the node-local Retain class; retry_join to every member over TLS; the Raft timing
#     scale from vault-settings.yaml;
#   - TLS on the API and for retry_join from cert-manager: a self-signed root in cert-manager's
#     namespace -> ClusterIssuer vault-ca -> server Certificate vault-server-tls, plus Secret vault-ca
#     (key ca.crt) in var.namespace (what ffe_vault_init reads) and in every var.ca_namespaces;
#   - members report ready while sealed or uninitialised (so Terraform can reach them to initialise
#     and unseal) and have no liveness probe (a sealed member must not be restarted);
#   - one LoadBalancer Service per member at member_ips[i] (kube-vip); in-cluster clients use the
#     chart's `vault` Service (standbys forward to the active member) or `vault-active`;
#   - the agent injector; Prometheus metrics without a token on the API listener;
#   - a daily Raft snapshot CronJob to the NFS backup share (ADR 0010: a short script in the image
#     the cluster already runs), retention backup_retention_days.
# Initialisation, unseal and the Kubernetes auth roles are Terraform's (ffe_vault_init,
# ffe_vault_config in environments/ha/vault.tf), not the chart's.

locals {
  # The one source of the Raft timing, Shamir numbers and snapshot schedule (the lab reads it too).
  settings = yamldecode(file("${path.module}/vault-settings.yaml"))

  is_vault = var.distribution == "vault"
  release  = "vault" # both charts: fullname = "vault" (openbao needs fullnameOverride, below)
  members  = length(var.member_ips)
  labels   = { "app.kubernetes.io/part-of" = "ffe-ha", "app.kubernetes.io/component" = "vault" }

  # The images' own names for the same things. OpenBao's CLI is `bao` and its client reads BAO_*
  # (openbao v2.6.2 api/client.go L34-59); Vault's reads VAULT_* (hashicorp/vault api/client.go).
  # Both charts mount the config and data under their image's home (values server.dataStorage.mountPath).
  cli        = local.is_vault ? "vault" : "bao"
  env_prefix = local.is_vault ? "VAULT_" : "BAO_"
  home       = local.is_vault ? "/vault" : "/openbao"
  data_path  = "${local.home}/data"
  tls_dir    = "${local.home}/userconfig/vault-server-tls"
  # Image as the chart builds it: vault: `<repository>:<tag>` (Docker Hub); openbao: `<registry>/<repository>:<tag>`.
  image_values = local.is_vault ? { repository = "hashicorp/vault", tag = var.image_tag } : { registry = "quay.io", repository = "openbao/openbao", tag = var.image_tag }
  image        = local.is_vault ? "docker.io/hashicorp/vault:${var.image_tag}" : "quay.io/openbao/openbao:${var.image_tag}"

  internal_service = "${local.release}-internal" # headless, publishNotReadyAddresses (both charts)
  active_service   = "${local.release}-active"
  svc              = "${var.namespace}.svc"
  member_names     = [for i in range(local.members) : "${local.release}-${i}"]
  member_addresses = [for ip in var.member_ips : "https://${ip}:8200"]

  # Secrets cert-manager writes.
  server_tls_secret = "vault-server-tls"
  ca_secret         = "vault-ca"      # in var.namespace and var.ca_namespaces: ca.crt = the CA
  ca_root_secret    = "vault-ca-root" # in cert-manager's namespace: the CA's own key pair
  cluster_issuer    = "vault-ca"

  # Server configuration (HCL). The chart runs it through `tpl` and then sed-replaces HOST_IP,
  # POD_IP, HOSTNAME, API_ADDR, TRANSIT_ADDR, RAFT_ADDR (openbao-helm 0.29.2 and vault-helm v0.32.0,
  # templates/_helpers.tpl, the args and config helpers): none of those words may appear here.
  # disable_mlock = true is appended by both charts. Keys (storage "raft" performance_multiplier,
  # retry_join leader_api_addr/leader_ca_cert_file, listener telemetry, telemetry) as in Vault's and
  # OpenBao's configuration docs; checked in openbao v2.6.2 physical/raft/raft.go L235-250, L800.
  #   performance_multiplier: vault-settings.yaml (1 = fastest leader election; see its comment).
  #   retry_join: every member (itself included is harmless); the CA that signs the members.
  #   unauthenticated_metrics_access: Prometheus scrapes /v1/sys/metrics without a token
  #     (modules/monitoring ServiceMonitor "vault").
  #   prometheus_retention_time: metrics stay exported this long after their last update (24h:
  #     rarely updated gauges, e.g. after a leadership change, do not vanish between scrapes).
  retry_join = join("\n", [for name in local.member_names : join("\n", [
    "  retry_join {",
    "    leader_api_addr     = \"https://${name}.${local.internal_service}:8200\"",
    "    leader_ca_cert_file = \"${local.tls_dir}/ca.crt\"",
    "  }",
  ])])
  # The audit device (ffe_vault_config audit_file_path): Vault enables it through the API; OpenBao
  # 2.x refuses API-created audit devices (server option unsafe_allow_api_audit_creation, off) and
  # takes them from its configuration instead (openbao v2.6.2 command/server/config.go
  # parseAuditDevices; website/content/docs/configuration/audit.mdx): type "file", path "file".
  audit_file_path = "stdout"
  audit_hcl = local.is_vault ? "" : join("\n", [
    "",
    "audit \"file\" \"file\" {",
    "  description = \"ffe-ha audit log (ffe_vault_config audit_file_path)\"",
    "  options {",
    "    file_path = \"${local.audit_file_path}\"",
    "  }",
    "}",
    "",
  ])
  server_hcl = <<-HCL
    ui = false

    listener "tcp" {
      address         = "[::]:8200"
      cluster_address = "[::]:8201"
      tls_cert_file   = "${local.tls_dir}/tls.crt"
      tls_key_file    = "${local.tls_dir}/tls.key"
      telemetry {
        unauthenticated_metrics_access = true
      }
    }

    storage "raft" {
      path                   = "${local.data_path}"
      performance_multiplier = ${local.settings.raft.performance_multiplier}
    ${local.retry_join}
    }

    service_registration "kubernetes" {}
    ${local.audit_hcl}
    telemetry {
      disable_hostname          = true
      prometheus_retention_time = "24h"
    }
  HCL

  # Chart values: the same for both charts (keys checked against both by make test-manifests).
  chart_values = merge(local.is_vault ? {} : {
    # release "vault" does not contain the chart name "openbao": without this every object would be
    # vault-openbao-* (openbao-helm templates/_helpers.tpl openbao.fullname)
    fullnameOverride = local.release
    }, {
    global = { tlsDisable = false } # https on 8200; scheme of the chart's probes and addresses
    injector = {
      enabled = true
      # Two injectors on different nodes (the chart's default anti-affinity) when the cluster is HA:
      # the webhook's failurePolicy is Ignore, so a missing injector silently skips injection.
      replicas   = local.members > 1 ? 2 : 1
      agentImage = local.image_values
    }
    server = {
      image = local.image_values
      # Ready while sealed (503 -> 204) or uninitialised (501 -> 204): the Services (and kube-vip)
      # must reach a sealed member so ffe_vault_init can unseal it. Standbys answer 200 (standbyok).
      readinessProbe = { enabled = true, path = "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204" }
      livenessProbe  = { enabled = false }
      # The CLI inside the pod (operators' `kubectl exec ... vault operator ...`) verifies the server.
      extraEnvironmentVars = { "${local.env_prefix}CACERT" = "${local.tls_dir}/ca.crt" }
      volumes              = [{ name = "server-tls", secret = { secretName = local.server_tls_secret, defaultMode = 288 } }] # 0440, group = fsGroup
      volumeMounts         = [{ name = "server-tls", mountPath = local.tls_dir, readOnly = true }]
      # Vault reads its TLS certificate at start and on SIGHUP only: the tls-reload sidecar (same
      # image, shared process namespace) sends SIGHUP to the server when cert-manager's renewal
      # reaches the mounted Secret, so a renewed certificate is served without a restart (a
      # restarted member would come back sealed).
      shareProcessNamespace = true
      extraContainers = [{
        name    = "tls-reload"
        image   = local.image
        command = ["/bin/sh", "-c", local.tls_reload_script]
        env = [
          { name = "TLS_DIR", value = local.tls_dir },
          { name = "SERVER_COMMAND", value = local.cli },
          { name = "CHECK_SECONDS", value = tostring(var.tls_reload_check_seconds) },
        ]
        securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true, capabilities = { drop = ["ALL"] } }
        resources       = { requests = { cpu = "5m", memory = "8Mi" }, limits = { memory = "32Mi" } }
        volumeMounts    = [{ name = "server-tls", mountPath = local.tls_dir, readOnly = true }]
      }]
      # As a string, like the charts' default (a map over their string default makes Helm warn).
      affinity = yamlencode({
        podAntiAffinity = {
          requiredDuringSchedulingIgnoredDuringExecution = [{
            topologyKey   = "kubernetes.io/hostname"
            labelSelector = { matchLabels = { "app.kubernetes.io/instance" = local.release, component = "server" } }
          }]
        }
      })
      dataStorage  = { enabled = true, size = var.data_size, storageClass = var.data_storage_class, mountPath = local.data_path, accessMode = "ReadWriteOnce" }
      auditStorage = { enabled = false } # the audit device writes to stdout (ffe_vault_config audit_file_path)
      standalone   = { enabled = false }
      ha = {
        enabled  = true
        replicas = local.members
        # api_addr must be a name the server certificate holds (the chart's default is the pod IP).
        # $(..._K8S_POD_NAME) is an env var the chart defines before this one.
        apiAddr = "https://$(${local.env_prefix}K8S_POD_NAME).${local.internal_service}:8200"
        raft    = { enabled = true, setNodeId = true, config = local.server_hcl }
        # The chart's default maxUnavailable is (n/2)-1 = 0 for 3 members: no node could be drained.
        disruptionBudget = { enabled = local.members > 1, maxUnavailable = 1 }
      }
    }
  })

  helm_chart = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = local.release, namespace = "kube-system", labels = local.labels }
    spec = {
      chart           = var.distribution
      repo            = var.chart_repo
      version         = var.chart_version
      targetNamespace = var.namespace
      createNamespace = false # modules/namespaces owns it (PSA, network policies)
      valuesContent   = yamlencode(local.chart_values)
    }
  }

  # ---- TLS (cert-manager) ---------------------------------------------------------------------
  issuer_ref = { group = "cert-manager.io", kind = "ClusterIssuer", name = local.cluster_issuer }
  tls_docs = concat(
    [
      { apiVersion = "cert-manager.io/v1", kind = "Issuer", metadata = { name = "vault-selfsigned", namespace = var.cert_manager_namespace, labels = local.labels }, spec = { selfSigned = {} } },
      {
        apiVersion = "cert-manager.io/v1"
        kind       = "Certificate"
        metadata   = { name = local.ca_root_secret, namespace = var.cert_manager_namespace, labels = local.labels }
        spec = {
          isCA        = true
          commonName  = "ffe-ha Vault CA"
          secretName  = local.ca_root_secret
          duration    = "87600h" # 10 years: a new CA means new certificates everywhere
          renewBefore = "720h"
          privateKey  = { algorithm = "ECDSA", size = 256 }
          issuerRef   = { group = "cert-manager.io", kind = "Issuer", name = "vault-selfsigned" }
        }
      },
      # A ClusterIssuer reads its CA Secret from cert-manager's cluster resource namespace (its own).
      { apiVersion = "cert-manager.io/v1", kind = "ClusterIssuer", metadata = { name = local.cluster_issuer, labels = local.labels }, spec = { ca = { secretName = local.ca_root_secret } } },
      {
        apiVersion = "cert-manager.io/v1"
        kind       = "Certificate"
        metadata   = { name = local.server_tls_secret, namespace = var.namespace, labels = local.labels }
        spec = {
          secretName = local.server_tls_secret
          commonName = "${local.release}.${local.svc}"
          dnsNames = concat(
            flatten([for s in [local.release, local.active_service, local.internal_service] : [s, "${s}.${var.namespace}", "${s}.${local.svc}", "${s}.${local.svc}.cluster.local"]]),
            ["*.${local.internal_service}", "*.${local.internal_service}.${var.namespace}", "*.${local.internal_service}.${local.svc}", "*.${local.internal_service}.${local.svc}.cluster.local", "localhost"],
          )
          ipAddresses = concat(var.member_ips, ["127.0.0.1"])
          # Renewed 30 days ahead; the tls-reload sidecar makes the members serve it (SIGHUP).
          duration    = "17520h"
          renewBefore = "720h"
          privateKey  = { algorithm = "ECDSA", size = 256, rotationPolicy = "Always" }
          usages      = ["server auth", "digital signature", "key encipherment"]
          issuerRef   = local.issuer_ref
        }
      },
    ],
    # Secret vault-ca (ca.crt) where it is read: cert-manager puts the issuing CA into ca.crt of every
    # Certificate's Secret. The leaf certificate in it is not used by anyone.
    [for ns in distinct(concat([var.namespace], var.ca_namespaces)) : {
      apiVersion = "cert-manager.io/v1"
      kind       = "Certificate"
      metadata   = { name = local.ca_secret, namespace = ns, labels = local.labels }
      spec = {
        secretName = local.ca_secret
        commonName = "vault-ca-reader.${ns}"
        duration   = "8760h"
        privateKey = { algorithm = "ECDSA", size = 256 }
        usages     = ["client auth", "digital signature"]
        issuerRef  = local.issuer_ref
      }
    }],
  )

  # ---- Services ------------------------------------------------------------------------------
  # One LoadBalancer per member at its fixed IP (kube-vip): Terraform unseals each member through it.
  # publishNotReadyAddresses: reachable whatever the readiness probe says.
  member_services = [for i, name in local.member_names : {
    apiVersion = "v1"
    kind       = "Service"
    metadata = {
      name        = "${local.release}-member-${i}"
      namespace   = var.namespace
      labels      = local.labels
      annotations = { (var.loadbalancer_annotation) = var.member_ips[i] }
    }
    spec = {
      type                     = "LoadBalancer"
      publishNotReadyAddresses = true
      selector                 = { "statefulset.kubernetes.io/pod-name" = name }
      ports                    = [{ name = "https", port = 8200, targetPort = 8200, protocol = "TCP" }]
    }
  }]

  # The scrape target of modules/monitoring's ServiceMonitor "vault" (selector
  # app.kubernetes.io/name=vault + vault-internal=true, endpoint port "http", scheme https): the
  # charts' own headless Service names its port "https" (both) and is labelled openbao-internal by
  # the OpenBao chart, so neither matches for both distributions. Headless: one target per member.
  metrics_service = {
    apiVersion = "v1"
    kind       = "Service"
    metadata = {
      name      = "${local.release}-metrics"
      namespace = var.namespace
      labels    = merge(local.labels, { "app.kubernetes.io/name" = "vault", "vault-internal" = "true" })
    }
    spec = {
      clusterIP                = "None"
      publishNotReadyAddresses = true # a sealed member's metrics show it sealed
      selector                 = { "app.kubernetes.io/instance" = local.release, component = "server" }
      ports                    = [{ name = "http", port = 8200, targetPort = 8200, protocol = "TCP" }]
    }
  }

  # ---- TLS reload --------------------------------------------------------------------------------
  # Every CHECK_SECONDS: when tls.crt/tls.key under TLS_DIR differ from what the server was last
  # signalled for, SIGHUP to the server: the process named SERVER_COMMAND whose arguments hold
  # "server" (found through /proc: the pod shares one process namespace; same user as the server,
  # so no capability is needed). An operator's CLI in the pod (`kubectl exec ... vault login`) has
  # the same name and must not be the one signalled. POSIX sh, cat, tr and cksum only. The first
  # check only records the state: the server read those files at its start.
  tls_reload_script = <<-SH
    set -u
    state() { cat "$TLS_DIR/tls.crt" "$TLS_DIR/tls.key" 2>/dev/null | cksum; }
    server() {
      for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = "$SERVER_COMMAND" ] || continue
        case " $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) " in
          *" server "*) echo "$${p#/proc/}"; return 0 ;;
        esac
      done
      return 1
    }
    last="$(state)"
    echo "tls-reload: watching $TLS_DIR every $CHECK_SECONDS s"
    while sleep "$CHECK_SECONDS"; do
      now="$(state)"
      [ "$now" = "$last" ] && continue
      if pid="$(server)" && kill -HUP "$pid"; then
        echo "tls-reload: certificate changed, sent SIGHUP to $SERVER_COMMAND (pid $pid)"
        last="$now"
      else
        echo "tls-reload: certificate changed but no $SERVER_COMMAND process could be signalled; retrying" >&2
      fi
    done
  SH

  # ---- Raft snapshots --------------------------------------------------------------------------
  # Daily (vault-settings.yaml snapshots.schedule, UTC). Logs in with its own ServiceAccount token
  # through the Kubernetes auth method (role vault-snapshot: read sys/storage/raft/snapshot only,
  # ffe_vault_config), saves through the active member to <name>.partial and renames it when
  # complete, then deletes snapshots older than backup_retention_days. The ServiceAccount has no
  # Kubernetes RBAC at all: its token is only presented to Vault.
  snapshot_name   = "vault-snapshot"
  snapshot_script = <<-SH
    set -eu
    # jwt=@file: the token is read by the CLI, never on a command line
    ${local.env_prefix}TOKEN="$(${local.cli} write -field=token auth/kubernetes/login role=${local.snapshot_name} jwt=@/var/run/secrets/vault-snapshot/token)"
    export ${local.env_prefix}TOKEN
    out="/backups/raft-$(date -u +%Y%m%dT%H%M%SZ).snap"
    ${local.cli} operator raft snapshot save "$out.partial"
    mv "$out.partial" "$out"
    echo "raft snapshot: wrote $out ($(stat -c %s "$out") bytes)"
    find /backups -maxdepth 1 -type f \( -name 'raft-*.snap' -o -name 'raft-*.snap.partial' \) \
      -mmin +${var.backup_retention_days * 1440} -print -exec rm -f {} +
  SH

  snapshot_labels = merge(local.labels, { "app.kubernetes.io/name" = local.snapshot_name })
  snapshot_docs = [
    {
      apiVersion = "v1"
      kind       = "PersistentVolumeClaim"
      metadata   = { name = var.snapshot_claim.name, namespace = var.namespace, labels = local.labels }
      spec = {
        storageClassName = var.backup_storage_class
        accessModes      = ["ReadWriteMany"]
        resources        = { requests = { storage = var.snapshot_claim.size } }
      }
    },
    { apiVersion = "v1", kind = "ServiceAccount", metadata = { name = local.snapshot_name, namespace = var.namespace, labels = local.labels }, automountServiceAccountToken = false },
    {
      apiVersion = "batch/v1"
      kind       = "CronJob"
      metadata = {
        name      = local.snapshot_name
        namespace = var.namespace
        labels    = local.snapshot_labels
        # checkov skips, each with its reason (read by checkov from the manifest; docs/security.md)
        annotations = {
          "checkov.io/skip1" = "CKV_K8S_15=IfNotPresent on purpose: a nightly snapshot must run while the registry is unreachable"
          "checkov.io/skip2" = "CKV_K8S_43=pinned by tag in environments/ha/pins.tf; no digest could be read on the build machine"
          "checkov.io/skip3" = "CKV_K8S_40=uid 100 is the image's own vault user as the chart runs it; the snapshots on the share belong to it and retention deletes them as that owner"
        }
      }
      spec = {
        schedule                   = local.settings.snapshots.schedule
        timeZone                   = "Etc/UTC"
        concurrencyPolicy          = "Forbid"
        startingDeadlineSeconds    = 3600
        successfulJobsHistoryLimit = 3
        failedJobsHistoryLimit     = 3
        jobTemplate = {
          metadata = { labels = local.snapshot_labels }
          spec = {
            backoffLimit          = 2
            activeDeadlineSeconds = 3600
            template = {
              metadata = { labels = local.snapshot_labels }
              spec = {
                serviceAccountName           = local.snapshot_name
                automountServiceAccountToken = false
                restartPolicy                = "Never"
                # the images' own user (uid 100) and the charts' fsGroup (1000)
                securityContext = { runAsNonRoot = true, runAsUser = 100, runAsGroup = 1000, fsGroup = 1000, seccompProfile = { type = "RuntimeDefault" } }
                containers = [{
                  name            = "snapshot"
                  image           = local.image
                  imagePullPolicy = "IfNotPresent"
                  command         = ["/bin/sh", "-c", local.snapshot_script]
                  env = [
                    { name = "${local.env_prefix}ADDR", value = "https://${local.active_service}.${local.svc}:8200" },
                    { name = "${local.env_prefix}CACERT", value = "/etc/vault-ca/ca.crt" },
                  ]
                  securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true, capabilities = { drop = ["ALL"] } }
                  resources       = { requests = { cpu = "50m", memory = "64Mi" }, limits = { cpu = "1", memory = "256Mi" } }
                  volumeMounts = [
                    { name = "backups", mountPath = "/backups" },
                    { name = "ca", mountPath = "/etc/vault-ca", readOnly = true },
                    { name = "token", mountPath = "/var/run/secrets/vault-snapshot", readOnly = true },
                  ]
                }]
                volumes = [
                  { name = "backups", persistentVolumeClaim = { claimName = var.snapshot_claim.name } },
                  { name = "ca", secret = { secretName = local.ca_secret, items = [{ key = "ca.crt", path = "ca.crt" }] } },
                  # a short-lived token for the Vault login only (no API access is bound to it)
                  { name = "token", projected = { sources = [{ serviceAccountToken = { path = "token", expirationSeconds = 600 } }] } },
                ]
              }
            }
          }
        }
      }
    },
  ]
}
