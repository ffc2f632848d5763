# A user node pool added to an existing AKS cluster, for DR capacity and bursting: labelled and
# tainted so only workloads that tolerate the burst pool land on it.
terraform {
  required_version = ">= 1.4"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}

resource "azurerm_kubernetes_cluster_node_pool" "this" {
  name                  = var.name
  kubernetes_cluster_id = var.cluster_id
  vm_size               = var.vm_size
  node_count            = var.node_count
  mode                  = "User"
  vnet_subnet_id        = var.subnet_id
  zones                 = var.zones
  orchestrator_version  = var.orchestrator_version
  max_pods              = var.max_pods
  node_labels           = var.labels
  node_taints           = var.taints
  tags                  = var.tags
}
