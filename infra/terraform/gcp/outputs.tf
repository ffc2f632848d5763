output "node_pool_name" {
  description = "Name of the burst node pool."
  value       = module.nodepool.name
}

output "node_count" {
  description = "Nodes in the burst pool (per zone)."
  value       = module.nodepool.node_count
}

output "cluster_endpoint" {
  description = "API server of the cluster the pool belongs to."
  value       = "https://${data.google_container_cluster.this.endpoint}"
}
