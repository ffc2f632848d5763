# A node pool added to an existing GKE cluster, for DR capacity and bursting: labelled and
# tainted so only workloads that tolerate the burst pool land on it.
terraform {
  required_version = ">= 1.4"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 7.0"
    }
  }
}

resource "google_container_node_pool" "this" {
  name       = var.name
  project    = var.project
  location   = var.location
  cluster    = var.cluster
  node_count = var.node_count

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.machine_type
    disk_size_gb    = var.disk_size_gb
    spot            = var.spot
    labels          = var.labels
    tags            = var.network_tags
    service_account = var.service_account
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    dynamic "taint" {
      for_each = var.taints
      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}
