output "subnet_id" {
  description = "Resource id of the burst subnet (null when create_subnet is false)."
  value       = one(azurerm_subnet.burst[*].id)
}

output "gateway_public_ips" {
  description = "Public IPs of the VPN gateway's two instances (modules/network/gcp's azure_gateway_ips); empty without the gateway."
  value       = azurerm_public_ip.gateway[*].ip_address
}

output "gateway_id" {
  description = "Resource id of the VPN gateway (null without it)."
  value       = one(azurerm_virtual_network_gateway.this[*].id)
}
