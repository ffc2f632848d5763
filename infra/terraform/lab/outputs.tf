output "node_pool_name" {
  description = "Name of the node pool."
  value       = terraform_data.pool.output.name
}

output "node_count" {
  description = "Nodes the pool has."
  value       = length(terraform_data.node)
}

output "cluster_endpoint" {
  description = "API endpoint of the cluster the pool belongs to."
  value       = terraform_data.pool.output.endpoint
}
