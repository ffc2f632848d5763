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
  count  = var.create_network || var.ncc_enabled ? 1 : 0

  network_name      = var.network_name
  project           = var.project
  region            = var.region
  create_subnetwork = var.create_network
  subnet_name       = "${var.node_pool_name}-subnet"

  # The NCC hub and its spokes (all off unless ncc_enabled; each attachment only with its inputs).
  ncc_enabled                 = var.ncc_enabled
  hub_name                    = var.hub_name
  router_asn                  = var.router_asn
  onprem_peer_ips             = var.onprem_peer_ips
  onprem_asn                  = var.onprem_asn
  onprem_shared_secret        = var.onprem_shared_secret
  azure_gateway_ips           = var.azure_gateway_ips
  azure_asn                   = var.azure_asn
  azure_shared_secret         = var.azure_shared_secret
  interconnect_attachment_ids = var.interconnect_attachment_ids
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
