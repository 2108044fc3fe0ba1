# Renders the ffe-backend release as one k3s HelmChart (helm.cattle.io/v1) for an ffe_manifests
# bundle. The chart travels inside the object (spec.chartContent = the package, base64), so k3s's
# helm-controller pulls nothing from a chart repository. Values: values_file (valuesContent), then
# `set` (spec.set, Helm --set semantics); helm-controller merges them in that order.
locals {
  values_file_content = var.enabled && var.values_file != null ? file(var.values_file) : ""
  values_decoded      = yamldecode(var.enabled && var.values_file != null ? local.values_file_content : "{}")
  # The file as written, unless the route's host names are replaced (then re-encoded as YAML).
  values_content = length(var.route_hostnames) == 0 ? local.values_file_content : yamlencode(merge(local.values_decoded, {
    httpRoute = merge(try(local.values_decoded.httpRoute, {}), { hostnames = var.route_hostnames })
  }))

  helmchart = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata = {
      name      = var.release_name
      namespace = "kube-system" # where helm-controller watches HelmCharts
      labels    = { "app.kubernetes.io/part-of" = "ffe-ha", "app.kubernetes.io/component" = "app" }
    }
    spec = merge(
      {
        # spec.chart names the chart (offline validation finds its values.schema.json);
        # chartContent is what helm-controller installs.
        chart           = "ffe-backend"
        chartContent    = var.enabled ? filebase64(var.chart_path) : ""
        targetNamespace = var.namespace
        createNamespace = false
        # The HelmChart CRD types spec.set values as int-or-string: booleans are refused, so they go
        # as "true"/"false", which helm-controller passes to --set (typed). Numbers stay numbers.
        set     = { for k, v in var.set : k => try(tobool(v) ? "true" : "false", v) }
        timeout = var.timeout
        # A failed upgrade stays failed (helm rollback, docs/app.md) instead of uninstall +
        # reinstall, which would take every replica down.
        failurePolicy = "abort"
      },
      var.enabled && (var.values_file != null || length(var.route_hostnames) > 0) ? { valuesContent = local.values_content } : {},
    )
  }
}
