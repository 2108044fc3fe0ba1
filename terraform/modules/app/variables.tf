variable "enabled" {
  description = "Render the app. false: `manifests` is empty and neither the package nor the values file is read."
  type        = bool
  default     = true
  nullable    = false
}

variable "chart_path" {
  description = "The packaged ffe-backend chart (.tgz) written by `make app-chart`; absolute, or relative to the root module's directory."
  type        = string
  nullable    = false

  validation {
    condition     = !var.enabled || (endswith(var.chart_path, ".tgz") && fileexists(var.chart_path))
    error_message = "The packaged app chart ${var.chart_path} is missing. Fix: run `make app-chart` in the repository root (packages helm/ffe-backend into terraform/environments/ha/charts/ffe-backend.tgz), then plan again."
  }
}

variable "values_file" {
  description = "Helm values file for the release (helm -f); absolute, or relative to the root module's directory. null: chart defaults only."
  type        = string
  default     = null

  validation {
    condition     = !var.enabled || var.values_file == null || try(fileexists(var.values_file), false)
    error_message = "The app values file ${coalesce(var.values_file, "(null)")} does not exist. Pass an existing file (app_values_file is relative to the repository root) or null for the chart defaults."
  }
}

variable "set" {
  description = "Helm --set overrides applied after values_file, e.g. { replicaCount = 5, \"image.tag\" = \"1.4.2\" }. Numbers keep their type; booleans are sent as \"true\"/\"false\", which helm-controller passes to --set typed (the HelmChart CRD refuses booleans)."
  type        = any
  default     = {}

  validation {
    condition     = can(keys(var.set))
    error_message = "set must be a map of Helm value paths to values, e.g. { replicaCount = 5 }."
  }
}

variable "release_name" {
  description = "Helm release name = HelmChart name (\"ffe\" in the seed, so the Deployment is ffe-backend)."
  type        = string
  default     = "ffe"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be a DNS-1123 label of at most 53 characters (Helm's release name limit)."
  }
}

variable "namespace" {
  description = "Namespace the release installs into. Not created here: modules/namespaces owns it (PSA, edge routes)."
  type        = string
  default     = "ffe"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label (lower-case letters, digits, '-')."
  }
}

variable "timeout" {
  description = "helm-controller's timeout for one install/upgrade (Go duration)."
  type        = string
  default     = "600s"

  validation {
    condition     = can(regex("^([0-9]+(s|m|h))+$", var.timeout))
    error_message = "timeout must be a Go duration such as \"600s\" or \"10m\"."
  }
}

variable "route_hostnames" {
  description = "Host names of the app's HTTPRoute (httpRoute.hostnames), replacing the values file's list; empty = the values file's own. Set in valuesContent, not spec.set: Helm's --set of list indices keeps the file's other entries."
  type        = list(string)
  default     = []
  nullable    = false
}
