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
  count  = var.create_network ? 1 : 0

  vnet_name           = var.vnet_name
  resource_group_name = data.azurerm_kubernetes_cluster.this.node_resource_group
  subnet_name         = "${var.node_pool_name}-subnet"
  subnet_cidr         = var.subnet_cidr
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
