variable "name" {
  description = "Node pool name."
  type        = string
}

variable "project" {
  description = "GCP project of the cluster."
  type        = string
}

variable "location" {
  description = "Region or zone of the cluster."
  type        = string
}

variable "cluster" {
  description = "Name of the GKE cluster the pool joins."
  type        = string
}

variable "node_count" {
  description = "Nodes in the pool (per zone of a regional cluster)."
  type        = number
}

variable "machine_type" {
  description = "Machine type of the nodes."
  type        = string
  default     = "e2-standard-4"
}

variable "disk_size_gb" {
  description = "Boot disk size of the nodes."
  type        = number
  default     = 100
}

variable "spot" {
  description = "Spot VMs (cheaper, may be reclaimed): fine for burst capacity, not for DR."
  type        = bool
  default     = false
}

variable "service_account" {
  description = "Service account of the nodes; null: the default compute account."
  type        = string
  default     = null
}

variable "network_tags" {
  description = "Network tags of the nodes (firewall rules)."
  type        = list(string)
  default     = []
}

variable "labels" {
  description = "Kubernetes labels of the nodes."
  type        = map(string)
  default     = {}
}

variable "taints" {
  description = "Kubernetes taints of the nodes (effect: NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE)."
  type = list(object({
    key    = string
    value  = string
    effect = string
  }))
  default = []
}
