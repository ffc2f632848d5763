data "google_container_cluster" "this" {
  name     = var.cluster_name
  location = var.cluster_location
  project  = var.project
}

locals {
  labels = merge(
    { "hybridops.io/pool" = "burst", "hybridops.io/run-id" = var.run_id },
    var.labels,
  )
}

module "network" {
  source = "../modules/network/gcp"
  count  = var.create_network ? 1 : 0

  network_name = var.network_name
  project      = var.project
  region       = var.region
  subnet_name  = "${var.node_pool_name}-subnet"
}

module "nodepool" {
  source = "../modules/gke-nodepool"

  name         = var.node_pool_name
  project      = var.project
  location     = var.cluster_location
  cluster      = data.google_container_cluster.this.name
  node_count   = var.node_count
  machine_type = var.machine_type
  spot         = var.spot
  labels       = local.labels
  taints = [{
    key    = "hybridops.io/burst"
    value  = "true"
    effect = "NO_SCHEDULE"
  }]
}
