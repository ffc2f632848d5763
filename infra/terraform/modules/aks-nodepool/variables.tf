variable "name" {
  description = "Node pool name (AKS: lowercase letters and digits, at most 12 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,11}$", var.name))
    error_message = "name must be 1-12 lowercase letters and digits, starting with a letter."
  }
}

variable "cluster_id" {
  description = "Resource id of the AKS cluster the pool joins."
  type        = string
}

variable "node_count" {
  description = "Nodes in the pool."
  type        = number
}

variable "vm_size" {
  description = "VM size of the nodes."
  type        = string
  default     = "Standard_D4s_v5"
}

variable "subnet_id" {
  description = "Subnet for the nodes; null: the cluster's default."
  type        = string
  default     = null
}

variable "zones" {
  description = "Availability zones of the nodes."
  type        = list(string)
  default     = null
}

variable "orchestrator_version" {
  description = "Kubernetes version of the pool; null: the control plane's."
  type        = string
  default     = null
}

variable "max_pods" {
  description = "Pods per node."
  type        = number
  default     = 50
}

variable "labels" {
  description = "Kubernetes labels of the nodes."
  type        = map(string)
  default     = {}
}

variable "taints" {
  description = "Kubernetes taints of the nodes, as key=value:Effect."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Azure tags."
  type        = map(string)
  default     = {}
}
