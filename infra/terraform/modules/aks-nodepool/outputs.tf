output "id" {
  description = "Resource id of the node pool."
  value       = azurerm_kubernetes_cluster_node_pool.this.id
}

output "name" {
  description = "Name of the node pool."
  value       = azurerm_kubernetes_cluster_node_pool.this.name
}

output "node_count" {
  description = "Nodes in the pool."
  value       = azurerm_kubernetes_cluster_node_pool.this.node_count
}
