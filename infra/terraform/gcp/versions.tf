# Root configuration for GCP: a burst node pool (and its subnetwork) on the standby GKE cluster;
# with ncc_enabled, the Network Connectivity Center hub and its spokes (modules/network/gcp).
# State: the gcs backend, configured at init by the runner's -backend-config settings (bucket,
# prefix); credentials come from the environment (GOOGLE_CREDENTIALS resolved from a secret
# reference), never from this file.
terraform {
  required_version = ">= 1.4"

  backend "gcs" {}

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
