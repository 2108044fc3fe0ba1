# Terraform and provider requirements for the HA environment.
# Terraform >= 1.9 is needed: variable validations here refer to other variables and locals.
# The provider is built from this repository (`make provider-install`) and found through the
# implied local mirror terraform.d/plugins/, so `terraform init` needs no network.
terraform {
  required_version = ">= 1.9.0"

  required_providers {
    ffe = {
      source  = "three-rivers-tech/ffe"
      version = "~> 0.1"
    }
  }
}
