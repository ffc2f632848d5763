variable "create_network" {
  description = "Create the VPC; false: use the existing one named network_name."
  type        = bool
  default     = false
}

variable "network_name" {
  description = "Name of the VPC network."
  type        = string
}

variable "project" {
  description = "GCP project."
  type        = string
}

variable "region" {
  description = "Region of the subnetwork."
  type        = string
}

variable "subnet_name" {
  description = "Name of the burst subnetwork."
  type        = string
  default     = "burst"
}

variable "subnet_cidr" {
  description = "Primary range of the burst subnetwork (nodes)."
  type        = string
  default     = "10.43.8.0/22"
}

variable "pods_cidr" {
  description = "Secondary range for pods."
  type        = string
  default     = "10.44.0.0/16"
}

variable "services_cidr" {
  description = "Secondary range for services."
  type        = string
  default     = "10.45.0.0/20"
}

variable "create_subnetwork" {
  description = "Create the burst subnetwork (false: only the connectivity below, when ncc_enabled)."
  type        = bool
  default     = true
}

variable "ncc_enabled" {
  description = "Create the Network Connectivity Center hub and the VPC's spoke; the VPN and Interconnect spokes follow their inputs below."
  type        = bool
  default     = false
}

variable "hub_name" {
  description = "Name of the NCC hub (and prefix of the spokes, HA VPN gateway, router and tunnels)."
  type        = string
  default     = "hybridops"
}

variable "router_asn" {
  description = "BGP ASN of the Cloud Router behind the HA VPN gateway."
  type        = number
  default     = 64514
}

variable "onprem_peer_ips" {
  description = "Public IPs of the on-prem VPN device (one or two); empty: no on-prem VPN spoke."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.onprem_peer_ips) <= 2
    error_message = "onprem_peer_ips takes one or two addresses."
  }
}

variable "onprem_asn" {
  description = "BGP ASN of the on-prem VPN device."
  type        = number
  default     = 65010
}

variable "onprem_tunnel_cidrs" {
  description = "Link-local /30 of each on-prem tunnel's BGP session (this side .1, the device .2)."
  type        = list(string)
  default     = ["169.254.10.0/30", "169.254.10.4/30"]

  validation {
    condition     = length(var.onprem_tunnel_cidrs) == 2
    error_message = "onprem_tunnel_cidrs takes two /30s, one per HA VPN interface."
  }
}

variable "onprem_shared_secret" {
  description = "IKE shared secret of the on-prem tunnels (from the secret store, as TF_VAR_onprem_shared_secret)."
  type        = string
  default     = null
  sensitive   = true
}

variable "azure_gateway_ips" {
  description = "Public IPs of Azure's active-active VPN gateway (modules/network/azure's gateway_public_ips); empty: no Azure spoke."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.azure_gateway_ips) <= 2
    error_message = "azure_gateway_ips takes one or two addresses."
  }
}

variable "azure_asn" {
  description = "BGP ASN of Azure's VPN gateway (its bgp_asn)."
  type        = number
  default     = 65515
}

variable "azure_tunnel_cidrs" {
  description = "Link-local /30 of each Azure tunnel's BGP session, within Azure's APIPA range 169.254.21.0-169.254.22.255 (this side .1, Azure .2)."
  type        = list(string)
  default     = ["169.254.21.0/30", "169.254.22.0/30"]

  validation {
    condition     = length(var.azure_tunnel_cidrs) == 2
    error_message = "azure_tunnel_cidrs takes two /30s, one per HA VPN interface."
  }
}

variable "azure_shared_secret" {
  description = "IKE shared secret of the Azure tunnels (from the secret store, as TF_VAR_azure_shared_secret)."
  type        = string
  default     = null
  sensitive   = true
}

variable "interconnect_attachment_ids" {
  description = "Self links of Interconnect VLAN attachments in the region; empty: no Interconnect spoke."
  type        = list(string)
  default     = []
}
