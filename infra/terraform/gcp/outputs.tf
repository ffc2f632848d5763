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

output "hub_id" {
  description = "Id of the NCC hub (null unless ncc_enabled)."
  value       = var.ncc_enabled ? module.network[0].hub_id : null
}

output "ha_vpn_interface_ips" {
  description = "Public IPs of the HA VPN gateway's interfaces (the azure root's gcp_vpn_interface_ips); empty without a VPN spoke."
  value       = var.ncc_enabled ? module.network[0].ha_vpn_interface_ips : []
}
