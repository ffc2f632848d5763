variable "node_pool_name" {
  description = "Name of the burst node pool (the driver passes it)."
  type        = string
  default     = "burst"
}

variable "node_count" {
  description = "Nodes in the pool (the driver passes it; 0 keeps the pool empty)."
  type        = number
  default     = 0

  validation {
    condition     = var.node_count >= 0 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number, 0 or more."
  }
}

variable "run_id" {
  description = "The workflow run that asked for the pool (the driver passes it; recorded as a label)."
  type        = string
  default     = ""
}

variable "subscription_id" {
  description = "Azure subscription (null: ARM_SUBSCRIPTION_ID)."
  type        = string
  default     = null
}

variable "resource_group_name" {
  description = "Resource group of the AKS cluster."
  type        = string
}

variable "cluster_name" {
  description = "Name of the AKS cluster the pool joins."
  type        = string
}

variable "vm_size" {
  description = "VM size of the burst nodes."
  type        = string
  default     = "Standard_D4s_v5"
}

variable "create_network" {
  description = "Give the pool a subnet of its own (in the cluster's VNet, vnet_name)."
  type        = bool
  default     = false
}

variable "vnet_name" {
  description = "The cluster's VNet (used when create_network or vpn_gateway_enabled)."
  type        = string
  default     = ""
}

variable "subnet_cidr" {
  description = "CIDR of the burst subnet (used when create_network)."
  type        = string
  default     = "10.42.8.0/22"
}

variable "labels" {
  description = "Extra Kubernetes labels of the burst nodes."
  type        = map(string)
  default     = {}
}

variable "taints" {
  description = "Kubernetes taints of the burst nodes."
  type        = list(string)
  default     = ["hybridops.io/burst=true:NoSchedule"]
}

variable "vpn_gateway_enabled" {
  description = "Create the VPN gateway to GCP's HA VPN in vnet_name (see modules/network/azure); off by default."
  type        = bool
  default     = false
}

variable "gateway_subnet_cidr" {
  description = "CIDR of the GatewaySubnet (used when vpn_gateway_enabled)."
  type        = string
  default     = "10.42.255.0/27"
}

variable "bgp_asn" {
  description = "BGP ASN of the VPN gateway (the gcp root's azure_asn)."
  type        = number
  default     = 65515
}

variable "gcp_vpn_interface_ips" {
  description = "Public IPs of GCP's HA VPN interfaces (the gcp root's ha_vpn_interface_ips); empty: no connections."
  type        = list(string)
  default     = []
}

variable "gcp_bgp_asn" {
  description = "BGP ASN of GCP's Cloud Router (the gcp root's router_asn)."
  type        = number
  default     = 64514
}

variable "gcp_shared_key" {
  description = "IPsec shared key of the connections to GCP (TF_VAR_gcp_shared_key, from the secret store)."
  type        = string
  default     = null
  sensitive   = true
}
