data "azurerm_kubernetes_cluster" "this" {
  name                = var.cluster_name
  resource_group_name = var.resource_group_name
}

locals {
  labels = merge(
    { "hybridops.io/pool" = "burst", "hybridops.io/run-id" = var.run_id },
    var.labels,
  )
}

module "network" {
  source = "../modules/network/azure"
  count  = var.create_network || var.vpn_gateway_enabled ? 1 : 0

  vnet_name           = var.vnet_name
  resource_group_name = data.azurerm_kubernetes_cluster.this.node_resource_group
  location            = data.azurerm_kubernetes_cluster.this.location
  create_subnet       = var.create_network
  subnet_name         = "${var.node_pool_name}-subnet"
  subnet_cidr         = var.subnet_cidr

  # The VNet's spoke on the GCP NCC hub: a VPN gateway to GCP's HA VPN (off by default).
  vpn_gateway_enabled   = var.vpn_gateway_enabled
  gateway_subnet_cidr   = var.gateway_subnet_cidr
  bgp_asn               = var.bgp_asn
  gcp_vpn_interface_ips = var.gcp_vpn_interface_ips
  gcp_bgp_asn           = var.gcp_bgp_asn
  gcp_shared_key        = var.gcp_shared_key
}

module "nodepool" {
  source = "../modules/aks-nodepool"

  name       = var.node_pool_name
  cluster_id = data.azurerm_kubernetes_cluster.this.id
  node_count = var.node_count
  vm_size    = var.vm_size
  subnet_id  = var.create_network ? module.network[0].subnet_id : null
  labels     = local.labels
  taints     = var.taints
  tags       = { "hybridops-run-id" = var.run_id }
}
