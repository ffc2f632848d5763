# The burst network on GCP: a subnetwork (with pod and service ranges) in the cluster's VPC,
# created with the VPC when the caller has none.
terraform {
  required_version = ">= 1.4"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 7.0"
    }
  }
}

resource "google_compute_network" "this" {
  count                   = var.create_network ? 1 : 0
  name                    = var.network_name
  project                 = var.project
  auto_create_subnetworks = false
}

data "google_compute_network" "existing" {
  count   = var.create_network ? 0 : 1
  name    = var.network_name
  project = var.project
}

resource "google_compute_subnetwork" "burst" {
  name                     = var.subnet_name
  project                  = var.project
  region                   = var.region
  network                  = var.create_network ? google_compute_network.this[0].id : data.google_compute_network.existing[0].id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "${var.subnet_name}-pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "${var.subnet_name}-services"
    ip_cidr_range = var.services_cidr
  }
}
