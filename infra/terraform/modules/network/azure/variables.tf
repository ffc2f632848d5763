variable "create_vnet" {
  description = "Create the VNet; false: use the existing one named vnet_name."
  type        = bool
  default     = false
}

variable "vnet_name" {
  description = "Name of the VNet."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the VNet."
  type        = string
}

variable "location" {
  description = "Azure region (used when creating the VNet)."
  type        = string
  default     = "westeurope"
}

variable "address_space" {
  description = "Address space of a created VNet."
  type        = list(string)
  default     = ["10.42.0.0/16"]
}

variable "create_subnet" {
  description = "Create the burst subnet (false: only the VPN gateway, when vpn_gateway_enabled)."
  type        = bool
  default     = true
}

variable "subnet_name" {
  description = "Name of the burst subnet."
  type        = string
  default     = "burst"
}

variable "subnet_cidr" {
  description = "CIDR of the burst subnet."
  type        = string
  default     = "10.42.8.0/22"
}

variable "tags" {
  description = "Azure tags."
  type        = map(string)
  default     = {}
}

variable "vpn_gateway_enabled" {
  description = "Create the VPN gateway (GatewaySubnet, two public IPs, active-active with BGP) and, per gcp_vpn_interface_ips, its connections to GCP's HA VPN."
  type        = bool
  default     = false
}

variable "gateway_name" {
  description = "Name of the VPN gateway (and prefix of its public IPs, local network gateways and connections)."
  type        = string
  default     = "hybridops-vpn"
}

variable "gateway_subnet_cidr" {
  description = "CIDR of the GatewaySubnet (a /27 or larger, inside the VNet's address space)."
  type        = string
  default     = "10.42.255.0/27"
}

variable "gateway_sku" {
  description = "SKU of the VPN gateway (an AZ SKU with zonal public IPs)."
  type        = string
  default     = "VpnGw2AZ"
}

variable "gateway_zones" {
  description = "Availability zones of the gateway's public IPs."
  type        = list(string)
  default     = ["1", "2", "3"]
}

variable "bgp_asn" {
  description = "BGP ASN of the VPN gateway (modules/network/gcp's azure_asn)."
  type        = number
  default     = 65515
}

variable "bgp_tunnel_cidrs" {
  description = "Link-local /30 of each tunnel's BGP session, in Azure's APIPA range 169.254.21.0-169.254.22.255 (GCP .1, this gateway's instance .2); modules/network/gcp's azure_tunnel_cidrs."
  type        = list(string)
  default     = ["169.254.21.0/30", "169.254.22.0/30"]

  validation {
    condition     = length(var.bgp_tunnel_cidrs) == 2
    error_message = "bgp_tunnel_cidrs takes two /30s, one per gateway instance."
  }
}

variable "gcp_vpn_interface_ips" {
  description = "Public IPs of GCP's HA VPN gateway interfaces (modules/network/gcp's ha_vpn_interface_ips); a local network gateway and a connection each."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.gcp_vpn_interface_ips) <= 2
    error_message = "gcp_vpn_interface_ips takes the HA VPN gateway's (at most two) interface addresses."
  }
}

variable "gcp_bgp_asn" {
  description = "BGP ASN of GCP's Cloud Router (modules/network/gcp's router_asn)."
  type        = number
  default     = 64514
}

variable "gcp_shared_key" {
  description = "IPsec shared key of the connections to GCP (from the secret store, as TF_VAR_gcp_shared_key; GCP's azure_shared_secret)."
  type        = string
  default     = null
  sensitive   = true
}
