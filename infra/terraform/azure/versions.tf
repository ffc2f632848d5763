# Root configuration for Azure: a burst node pool (and its subnet) on the standby AKS cluster;
# with vpn_gateway_enabled, the VNet's VPN gateway to GCP's HA VPN (modules/network/azure).
# State: the azurerm backend, configured at init by the runner's -backend-config settings
# (storage_account_name, container_name, key, resource_group_name); its credentials come from
# the environment (ARM_* variables resolved from secret references), never from this file.
terraform {
  required_version = ">= 1.4"

  backend "azurerm" {}

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
}
