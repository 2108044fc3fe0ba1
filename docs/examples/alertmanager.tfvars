# Where alerts go: page "ops" through a webhook. Keep the "null" receiver: the chart's default route
# sends the always-firing Watchdog alert there, and Alertmanager rejects a route to a receiver that
# does not exist (Helm merges this map into the chart's default, it does not replace it).
monitoring_alertmanager_config = {
  route = {
    receiver = "ops"
    group_by = ["alertname", "namespace"]
    routes   = [{ receiver = "null", matchers = ["alertname = \"Watchdog\""] }]
  }
  receivers = [
    { name = "null" },
    { name = "ops", webhook_configs = [{ url = "https://alerts.example.com/hook" }] },
  ]
}
