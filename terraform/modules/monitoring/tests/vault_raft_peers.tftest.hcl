# The expected Raft peer count VaultRaftPeersMissing compares against (manifests.tf expected_group):
# run by `make test-monitoring`.
variables {
  chart_version  = "88.5.3"
  server_ips     = ["10.210.0.11"]
  vault_enabled  = true
  chart_versions = { loki = "18.11.0", fluent_bit = "0.58.1", opentelemetry_collector = "0.170.0" }
}

run "three_members_by_default" {
  command = plan
  assert {
    condition     = strcontains(output.manifests["prometheusrule-expected.yaml"], "ffe:vault_raft_peers:expected") && strcontains(output.manifests["prometheusrule-expected.yaml"], "vector(3)")
    error_message = "expected ffe:vault_raft_peers:expected = vector(3): ${output.manifests["prometheusrule-expected.yaml"]}"
  }
}

# vault_ha_enabled = false deploys one member: the environment passes vault_members = 1.
run "one_member_without_ha" {
  command = plan
  variables {
    vault_members = 1
  }
  assert {
    condition     = strcontains(output.manifests["prometheusrule-expected.yaml"], "vector(1)") && !strcontains(output.manifests["prometheusrule-expected.yaml"], "vector(3)")
    error_message = "expected ffe:vault_raft_peers:expected = vector(1): ${output.manifests["prometheusrule-expected.yaml"]}"
  }
}

run "an_even_member_count_is_rejected" {
  command = plan
  variables {
    vault_members = 2
  }
  expect_failures = [var.vault_members]
}

# Without the Vault layer neither the record nor the Vault rules are rendered.
run "no_vault_no_vault_records" {
  command = plan
  variables {
    vault_enabled = false
  }
  assert {
    condition     = !strcontains(output.manifests["prometheusrule-expected.yaml"], "ffe:vault_") && !contains(keys(output.manifests), "prometheusrule-vault.yaml")
    error_message = "Vault records or rules rendered without the Vault layer"
  }
}
