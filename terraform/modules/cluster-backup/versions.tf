# Pure computation: no providers, no resources.
terraform {
  required_version = ">= 1.9.0"
}
