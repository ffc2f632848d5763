variable "node_pool_name" {
  description = "Name of the burst node pool."
  type        = string
  default     = "burst"
}

variable "node_count" {
  description = "Nodes in the pool; 0 keeps the pool but runs nothing."
  type        = number
  default     = 0

  validation {
    condition     = var.node_count >= 0 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number, 0 or more."
  }
}

variable "run_id" {
  description = "The workflow run that asked for this pool (recorded, so a release undoes only its own)."
  type        = string
  default     = ""
}

variable "labels" {
  description = "Kubernetes labels of the pool's nodes."
  type        = map(string)
  default     = { "hybridops.io/pool" = "burst" }
}

variable "cluster_endpoint" {
  description = "The lab cluster's API endpoint (nothing listens there: the lab models it)."
  type        = string
  default     = "https://127.0.0.1:6443"
}
