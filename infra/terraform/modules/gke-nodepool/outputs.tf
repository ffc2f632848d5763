output "id" {
  description = "Id of the node pool."
  value       = google_container_node_pool.this.id
}

output "name" {
  description = "Name of the node pool."
  value       = google_container_node_pool.this.name
}

output "node_count" {
  description = "Nodes in the pool (per zone)."
  value       = google_container_node_pool.this.node_count
}
