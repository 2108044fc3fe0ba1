# Pure rendering module: no providers, no resources. Variables in, manifests (file name -> YAML) out.
terraform {
  required_version = ">= 1.9.0"
}
