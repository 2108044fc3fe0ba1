# The pgBackRest age limits the module derives from the backup schedules (main.tf
# pg_backup_*): run by `make test-monitoring`. Expected values are worked out by hand here.
variables {
  chart_version    = "88.5.3"
  server_ips       = ["10.210.0.11"]
  postgres_enabled = true
  chart_versions   = { loki = "18.11.0", fluent_bit = "0.58.1", opentelemetry_collector = "0.170.0" }
}

# ha-settings.yaml: weekly full Sunday 01:00, differential Monday-Saturday 01:00, margin 6 h.
# Full: 168 h + 6 h = 626400 s. Any backup: one every 24 h + 6 h = 108000 s (on Monday the newest
# differential is 48 h old, but Sunday's full is 24 h old).
run "weekly_full_and_daily_differentials" {
  command = plan
  variables {
    postgres_backup_schedules        = { full = "0 1 * * 0", differential = "0 1 * * 1-6" }
    postgres_backup_age_margin_hours = 6
  }
  assert {
    condition     = strcontains(output.manifests["prometheusrule-expected.yaml"], "vector(626400)") && strcontains(output.manifests["prometheusrule-expected.yaml"], "vector(108000)")
    error_message = "expected full 626400 s and any 108000 s: ${output.manifests["prometheusrule-expected.yaml"]}"
  }
}

# Full Sunday 01:00, differential every day 03:00, margin 2 h: runs Sun 01, Sun 03, Mon 03 ... Sat 03;
# longest gap Sat 03 -> Sun 03 = 24 h (Sat 03 -> Sun 01 is 22 h, then 2 h). Full: 170 h = 612000 s;
# any: 26 h = 93600 s.
run "differentials_at_another_hour" {
  command = plan
  variables {
    postgres_backup_schedules        = { full = "0 1 * * 0", differential = "0 3 * * *" }
    postgres_backup_age_margin_hours = 2
  }
  assert {
    condition     = strcontains(output.manifests["prometheusrule-expected.yaml"], "vector(612000)") && strcontains(output.manifests["prometheusrule-expected.yaml"], "vector(93600)")
    error_message = "expected full 612000 s and any 93600 s: ${output.manifests["prometheusrule-expected.yaml"]}"
  }
}

# Full on Sunday and Wednesday (7 = Sunday), nothing else: gaps 72 h and 96 h; margin 1 h.
# Full and any: 97 h = 349200 s.
run "two_fulls_a_week" {
  command = plan
  variables {
    postgres_backup_schedules        = { full = "30 0 * * 3,7" }
    postgres_backup_age_margin_hours = 1
  }
  assert {
    condition     = length(regexall("vector\\(349200\\)", output.manifests["prometheusrule-expected.yaml"])) == 2
    error_message = "expected 349200 s twice: ${output.manifests["prometheusrule-expected.yaml"]}"
  }
}

run "a_schedule_the_alerts_cannot_read_is_rejected" {
  command = plan
  variables {
    postgres_backup_schedules = { full = "0 1 * * 0", differential = "*/30 * * * *" }
  }
  expect_failures = [var.postgres_backup_schedules]
}

run "schedules_without_a_full_backup_are_rejected" {
  command = plan
  variables {
    postgres_backup_schedules = { differential = "0 1 * * *" }
  }
  expect_failures = [var.postgres_backup_schedules]
}

# Without the Postgres layer none of its records is rendered.
run "no_postgres_no_backup_records" {
  command = plan
  variables {
    postgres_enabled = false
  }
  assert {
    condition     = !strcontains(output.manifests["prometheusrule-expected.yaml"], "ffe:postgres_")
    error_message = "Postgres records rendered without the Postgres layer"
  }
}
