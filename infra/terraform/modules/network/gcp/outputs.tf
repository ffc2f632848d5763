output "subnetwork_id" {
  description = "Id of the burst subnetwork (null when create_subnetwork is false)."
  value       = one(google_compute_subnetwork.burst[*].id)
}

output "pods_range_name" {
  description = "Name of the secondary range for pods."
  value       = "${var.subnet_name}-pods"
}

output "hub_id" {
  description = "Id of the NCC hub (null when ncc_enabled is false)."
  value       = one(google_network_connectivity_hub.this[*].id)
}

output "ha_vpn_interface_ips" {
  description = "Public IPs of the HA VPN gateway's two interfaces, for the peers (Azure's local network gateways, the on-prem device); empty without a VPN spoke."
  value       = flatten([for gateway in google_compute_ha_vpn_gateway.this : [for i in gateway.vpn_interfaces : i.ip_address]])
}

output "vpn_tunnel_names" {
  description = "Names of the VPN tunnels, by key (onprem-0, onprem-1, azure-0, azure-1)."
  value       = { for key, tunnel in google_compute_vpn_tunnel.this : key => tunnel.name }
}
