# The Secrets/ConfigMaps export and the off-site copy (backups.tf, modules/cluster-backup): what
# the example renders without them, what one recipient and one target render, and one run per
# validation rule. Run from the environment directory:
#   terraform test -var-file=terraform.tfvars.example -filter=tests/backups.tftest.hcl
# The export's script itself is run by crates/ffe-validate/tests/secrets_export.rs.

# Quiet every other warning (check block), as validation.tftest.hcl does.
variables {
  kubernetes_version   = "v1.36"
  vault_version        = "1.21"
  ssh_known_hosts_file = "tests/fixtures/known_hosts"
  nfs_server           = "10.0.5.10"
  nfs_export           = "/export/ffe-backups"
  monitoring_alertmanager_config = {
    route     = { receiver = "ops" }
    receivers = [{ name = "ops", webhook_configs = [{ url = "http://alert-relay.monitoring.svc:8080/hook" }] }]
  }
}

# The example (no recipient): nothing rendered, no bundle, the plan's output says so.
run "example_exports_nothing_and_says_so" {
  command = plan
  assert {
    condition     = length(ffe_manifests.backups) == 0 && startswith(output.secrets_export.status, "NOT EXPORTED") && output.secrets_export.cronjob == null
    error_message = "without secrets_export_age_recipient nothing is rendered and output secrets_export says NOT EXPORTED"
  }
}

run "recipient_and_offsite_render_both_jobs" {
  command = plan
  variables {
    secrets_export_age_recipient = "age18efmn5yjugfs49uypygezcvmw97emewgnxfrggkvkvlchzcrsvgq98sywe"
    backup_offsite = {
      target         = "ffe-backup@backup.example.com:/srv/ffe-offsite"
      known_hosts    = "[backup.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICKur6GBf8+bPTrFLR/TbQb6rkVpWvnKg39lF+bm89aW"
      ssh_key_secret = "ffe-backup-offsite-ssh"
      ssh_port       = 2222
    }
  }
  assert {
    condition = alltrue([
      for d in split("---\n", ffe_manifests.backups[0].manifests["secrets-export.yaml"]) :
      yamldecode(d).spec.schedule == "15 2 * * *" &&
      yamldecode(d).metadata.namespace == "monitoring" &&
      strcontains(yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].command[2], "age -r 'age18efmn5yjugfs49uypygezcvmw97emewgnxfrggkvkvlchzcrsvgq98sywe'") &&
      strcontains(yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].command[2], "-mmin +${30 * 1440}") &&
      yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].image == local.backup_job_images.secrets_export
      if yamldecode(d).kind == "CronJob"
    ])
    error_message = "CronJob ffe-secrets-export: daily 02:15, in monitoring, encrypted to the recipient, 30 days' retention, the pinned image"
  }
  assert {
    condition = (
      output.secrets_export.cronjob == "monitoring/ffe-secrets-export" &&
      output.secrets_export.schedule == "15 2 * * *" &&
      output.secrets_export.dir == "k8s/monitoring-backup-cluster" &&
      output.secrets_export.files == "secrets-*.tar.age"
    )
    error_message = "output secrets_export names the CronJob and the claim's directory (NFS CSI: k8s/<namespace>-<claim>)"
  }
  assert {
    condition = anytrue([
      for d in split("---\n", ffe_manifests.backups[0].manifests["backup-offsite.yaml"]) :
      yamldecode(d).spec.schedule == "0 5 * * *" &&
      strcontains(yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].command[2], "-p 2222") &&
      !strcontains(yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].command[2], "--delete")
      if yamldecode(d).kind == "CronJob"
    ])
    error_message = "CronJob ffe-backup-offsite: 05:00, port 2222, never --delete"
  }
}

run "recipient_is_not_a_public_key" {
  command = plan
  variables {
    secrets_export_age_recipient = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
  }
  expect_failures = [var.secrets_export_age_recipient]
}

run "schedule_is_not_cron" {
  command = plan
  variables {
    secrets_export_schedule = "daily"
  }
  expect_failures = [var.secrets_export_schedule]
}

run "offsite_target_without_path" {
  command = plan
  variables {
    backup_offsite = {
      target         = "ffe-backup@backup.example.com"
      known_hosts    = "backup.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICKur6GBf8+bPTrFLR/TbQb6rkVpWvnKg39lF+bm89aW"
      ssh_key_secret = "ffe-backup-offsite-ssh"
    }
  }
  expect_failures = [var.backup_offsite]
}

run "offsite_known_hosts_of_another_host" {
  command = plan
  variables {
    backup_offsite = {
      target         = "ffe-backup@backup.example.com:/srv/ffe-offsite"
      known_hosts    = "other.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICKur6GBf8+bPTrFLR/TbQb6rkVpWvnKg39lF+bm89aW"
      ssh_key_secret = "ffe-backup-offsite-ssh"
    }
  }
  expect_failures = [var.backup_offsite]
}

run "offsite_known_hosts_not_a_line" {
  command = plan
  variables {
    backup_offsite = {
      target         = "ffe-backup@backup.example.com:/srv/ffe-offsite"
      known_hosts    = "SHA256:abcdef"
      ssh_key_secret = "ffe-backup-offsite-ssh"
    }
  }
  expect_failures = [var.backup_offsite]
}

run "offsite_secret_name_invalid" {
  command = plan
  variables {
    backup_offsite = {
      target         = "ffe-backup@backup.example.com:/srv/ffe-offsite"
      known_hosts    = "backup.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICKur6GBf8+bPTrFLR/TbQb6rkVpWvnKg39lF+bm89aW"
      ssh_key_secret = "My_Key"
    }
  }
  expect_failures = [var.backup_offsite]
}
