output "node_pool_name" {
  description = "Name of the burst node pool."
  value       = module.nodepool.name
}

output "node_count" {
  description = "Nodes in the burst pool."
  value       = module.nodepool.node_count
}

output "cluster_endpoint" {
  description = "API server of the cluster the pool belongs to."
  value       = "https://${data.azurerm_kubernetes_cluster.this.fqdn}:443"
}

output "gateway_public_ips" {
  description = "Public IPs of the VPN gateway (the gcp root's azure_gateway_ips); empty unless vpn_gateway_enabled."
  value       = var.vpn_gateway_enabled ? module.network[0].gateway_public_ips : []
}
