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
