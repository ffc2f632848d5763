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

variable "project" {
  description = "GCP project of the GKE cluster."
  type        = string
}

variable "region" {
  description = "Region of the cluster."
  type        = string
}

variable "cluster_name" {
  description = "Name of the GKE cluster the pool joins."
  type        = string
}

variable "cluster_location" {
  description = "Location of the cluster (region, or zone of a zonal cluster)."
  type        = string
}

variable "machine_type" {
  description = "Machine type of the burst nodes."
  type        = string
  default     = "e2-standard-4"
}

variable "spot" {
  description = "Spot VMs for the burst nodes."
  type        = bool
  default     = false
}

variable "create_network" {
  description = "Give the pool a subnetwork of its own (in network_name)."
  type        = bool
  default     = false
}

variable "network_name" {
  description = "The cluster's VPC (used when create_network or ncc_enabled; the hub's VPC spoke)."
  type        = string
  default     = "default"
}

variable "labels" {
  description = "Extra Kubernetes labels of the burst nodes."
  type        = map(string)
  default     = {}
}

variable "ncc_enabled" {
  description = "Create the Network Connectivity Center hub with network_name's VPC as a spoke (see modules/network/gcp); off by default."
  type        = bool
  default     = false
}

variable "hub_name" {
  description = "Name of the NCC hub (and prefix of its spokes and VPN resources)."
  type        = string
  default     = "hybridops"
}

variable "router_asn" {
  description = "BGP ASN of the Cloud Router behind the HA VPN gateway."
  type        = number
  default     = 64514
}

variable "onprem_peer_ips" {
  description = "Public IPs of the on-prem VPN device; empty: no on-prem VPN spoke."
  type        = list(string)
  default     = []
}

variable "onprem_asn" {
  description = "BGP ASN of the on-prem VPN device."
  type        = number
  default     = 65010
}

variable "onprem_shared_secret" {
  description = "IKE shared secret of the on-prem tunnels (TF_VAR_onprem_shared_secret, from the secret store)."
  type        = string
  default     = null
  sensitive   = true
}

variable "azure_gateway_ips" {
  description = "Public IPs of Azure's VPN gateway (the azure root's gateway_public_ips); empty: no Azure spoke."
  type        = list(string)
  default     = []
}

variable "azure_asn" {
  description = "BGP ASN of Azure's VPN gateway."
  type        = number
  default     = 65515
}

variable "azure_shared_secret" {
  description = "IKE shared secret of the Azure tunnels (TF_VAR_azure_shared_secret, from the secret store)."
  type        = string
  default     = null
  sensitive   = true
}

variable "interconnect_attachment_ids" {
  description = "Self links of Interconnect VLAN attachments; empty: no Interconnect spoke."
  type        = list(string)
  default     = []
}
