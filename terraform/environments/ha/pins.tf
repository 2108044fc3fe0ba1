# The ONE place for version facts: which upstream versions are supported, and which component
# versions this environment pins. Review it when upstream releases; every entry says "as of".
#
# Supported lists (as of 2026-11):
#   Kubernetes (k3s channels): v1.35, v1.36, v1.37 are maintained; v1.34 and older are past EOL.
#   Vault: 1.20 and 1.21 are supported; 1.19 and older are past EOL.
#   PostgreSQL: majors 15-18 are supported; 14 reaches EOL in November 2026, 13 and older are EOL.
# A version outside these lists still plans; a `check` block below prints a warning that names
# the supported versions. Nothing here stops an apply: the operator decides when to upgrade.
# Exception: a PostgreSQL major the pinned Percona operator has no images for (postgres_images
# below) cannot run at all, so variables.tf refuses it.

locals {
  supported_versions = {
    kubernetes = ["v1.35", "v1.36", "v1.37"]
    vault      = ["1.20", "1.21"]
    postgres   = ["15", "16", "17", "18"]
  }

  # Defaults used when a version variable is left null (the seed sets them explicitly).
  default_versions = {
    kubernetes = "v1.36"
    vault      = "1.21"
    postgres   = "17"
  }

  # Pinned in-cluster component versions (as of 2026-12). Each chart version is vendored whole
  # under upstream/charts/<chart>/<version>/ (source commit, licence, published version list), and
  # `make test-manifests` renders it with our values: a pin that is not vendored fails the tests.
  # Override single entries with `component_versions` (vendor the new version first).
  pinned_component_versions = {
    calico                  = "v3.32.0" # charts crd.projectcalico.org.v1 + tigera-operator v3.32.0 (operator image v1.42.0)
    kube_vip                = "v1.2.3"
    cert_manager            = "v1.21.1"
    gateway_api             = "v1.5.1" # the Gateway API release NGINX Gateway Fabric 2.6.7 pins
    nginx_gateway_fabric    = "2.6.7"
    kube_prometheus_stack   = "88.5.3"
    csi_driver_nfs          = "4.13.4"
    loki                    = "18.11.0"
    fluent_bit              = "0.58.1"
    opentelemetry_collector = "0.170.0"
    pg_operator             = "3.0.0"  # Percona Operator for PostgreSQL: chart pg-operator 3.0.0 = Percona operator 3.0.0 (CRDs v3.0.0)
    vault_helm              = "0.32.0" # HashiCorp's chart vault 0.32.0 (appVersion 1.21.2); image tag from vault_version
    openbao_helm            = "0.29.2" # OpenBao's chart openbao 0.29.2 (appVersion v2.6.2)
    istio                   = "1.30.3" # Istio's charts base, istiod, cni and ztunnel 1.30.3 (service_mesh_enabled only)
  }

  # Vault server image per minor when vault_version is "X.Y" (as of 2026-12): the appVersion of the
  # last hashicorp/vault-helm release that shipped that minor (Chart.yaml at tags v0.28.1, v0.29.1,
  # v0.30.0, v0.31.0, v0.32.0; listed in upstream/charts/vault/versions.txt). The seed's "1.17" is
  # past EOL (check below warns) but still maps to a real image. "X.Y.Z" is used as given.
  vault_image_tags = {
    "1.17" = "1.17.2"
    "1.18" = "1.18.1"
    "1.19" = "1.19.0"
    "1.20" = "1.20.4"
    "1.21" = "1.21.2"
  }

  # OpenBao's image: the pinned chart's appVersion without the "v" (the chart's own default tag,
  # openbao-helm templates/server-statefulset.yaml: trimPrefix "v" .Chart.AppVersion).
  openbao_image_tag = "2.6.2"

  # Images of the PerconaPGCluster per PostgreSQL major (as of 2026-12): the chart sets no
  # RELATED_IMAGE_* defaults, so the cluster names its images. These are the tags Percona operator 3.0.0 is
  # released and tested with (percona-postgresql-operator v3.0.0 e2e-tests/release_versions);
  # Percona operator 3.0.0 has images for majors 14 to 18 only, so postgres_version must be one of these
  # keys (variable validation). PgBouncer and pgBackRest are the same for every major.
  postgres_images = {
    for major, tag in {
      "14" = "14.23-1"
      "15" = "15.18-1"
      "16" = "16.14-1"
      "17" = "17.10-1"
      "18" = "18.4-1"
      } : major => {
      postgres   = "docker.io/percona/percona-distribution-postgresql:${tag}"
      pgbouncer  = "docker.io/percona/percona-pgbouncer:1.25.2-1"
      pgbackrest = "docker.io/percona/percona-pgbackrest:2.58.0-2"
    }
  }

  # Images of the cluster-backup CronJobs (modules/cluster-backup, backups.tf; as of 2026-12).
  # No upstream image ships kubectl, jq and age together, and the project builds no images (ADR
  # 0010): nixery.dev assembles an image from nixpkgs with exactly the packages its path names,
  # at the nixpkgs release its tag names (a release branch: security fixes land in it, versions
  # do not jump). NOT VERIFIED HERE (no registry, no container runtime on the build machine): that
  # these tags resolve, and that /bin/bash and every tool the scripts call are in the images.
  # The scripts themselves are tested with the same tool names (crates/ffe-validate/tests/
  # secrets_export.rs); upstream/images/{age,rsync}/<tag>/ record that they read no variable.
  backup_job_images = {
    secrets_export = "nixery.dev/shell/findutils/gnutar/jq/kubectl/age:nixos-26.05"
    offsite        = "nixery.dev/shell/openssh/rsync:nixos-26.05"
  }

  component_versions = merge(local.pinned_component_versions, var.component_versions)

  # Minor/major parts of the requested versions, for the support checks below. try(): a malformed
  # value is reported by the variable's own validation, not here.
  kubernetes_version = coalesce(var.kubernetes_version, local.default_versions.kubernetes)
  vault_version      = coalesce(var.vault_version, local.default_versions.vault)
  postgres_version   = coalesce(var.postgres_version, local.default_versions.postgres)

  kubernetes_minor = try(regex("^(v[0-9]+\\.[0-9]+)", local.kubernetes_version)[0], local.kubernetes_version)
  vault_minor      = try(regex("^([0-9]+\\.[0-9]+)", local.vault_version)[0], local.vault_version)
}

check "kubernetes_version_supported" {
  assert {
    condition     = contains(local.supported_versions.kubernetes, local.kubernetes_minor)
    error_message = "kubernetes_version = \"${local.kubernetes_version}\" is not a supported Kubernetes minor (past upstream end of life, or newer than this environment was tested with). Supported as of 2026-11: ${join(", ", local.supported_versions.kubernetes)}. The pinned add-ons are tested only on those (NGINX Gateway Fabric 2.6.7 refuses to install on Kubernetes older than 1.31, so the edge would not come up). Fix for a new cluster: choose the version before the first apply, e.g. kubernetes_version = \"${local.default_versions.kubernetes}\" in terraform.tfvars. A cluster that already runs an older minor cannot jump: raise kubernetes_version one minor per apply (the plan refuses a skipped minor and any downgrade; docs/deploy.md, Upgrading k3s)."
  }
}

check "vault_version_supported" {
  assert {
    condition     = var.vault_distribution == "openbao" || contains(local.supported_versions.vault, local.vault_minor)
    error_message = "vault_version = \"${local.vault_version}\" is not a supported Vault release (past end of life, or not yet tested). Supported as of 2026-11: ${join(", ", local.supported_versions.vault)}. Fix: set vault_version = \"${local.default_versions.vault}\" in terraform.tfvars."
  }
}

check "postgres_version_supported" {
  assert {
    condition     = contains(local.supported_versions.postgres, local.postgres_version)
    error_message = "postgres_version = \"${local.postgres_version}\" is not a supported PostgreSQL major. Supported as of 2026-11: ${join(", ", local.supported_versions.postgres)}. Fix: set postgres_version = \"${local.default_versions.postgres}\" in terraform.tfvars (a major upgrade needs a pg_upgrade; see docs)."
  }
}
