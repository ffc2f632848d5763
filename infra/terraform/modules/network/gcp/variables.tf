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
