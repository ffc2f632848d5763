# The network on Azure: a subnet for the burst node pool in the cluster's VNet, created with the
# VNet when the caller has none; and, when vpn_gateway_enabled, the VNet's side of its spoke on
# the GCP Network Connectivity Center hub (modules/network/gcp): a route-based, active-active
# VPN gateway with BGP in the GatewaySubnet, a local network gateway per GCP HA VPN interface
# and an IPsec connection to each. The shared key is a sensitive variable (the deployment feeds
# it from the secret store as TF_VAR_...), never a literal here.
terraform {
  required_version = ">= 1.4"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}

resource "azurerm_virtual_network" "this" {
  count               = var.create_vnet ? 1 : 0
  name                = var.vnet_name
  resource_group_name = var.resource_group_name
  location            = var.location
  address_space       = var.address_space
  tags                = var.tags
}

data "azurerm_virtual_network" "existing" {
  count               = var.create_vnet ? 0 : 1
  name                = var.vnet_name
  resource_group_name = var.resource_group_name
}

resource "azurerm_subnet" "burst" {
  count                = var.create_subnet ? 1 : 0
  name                 = var.subnet_name
  resource_group_name  = var.resource_group_name
  virtual_network_name = local.vnet_name
  address_prefixes     = [var.subnet_cidr]
}

# The subnet had no count before the VPN gateway came: keep its state.
moved {
  from = azurerm_subnet.burst
  to   = azurerm_subnet.burst[0]
}

locals {
  vnet_name   = var.create_vnet ? azurerm_virtual_network.this[0].name : data.azurerm_virtual_network.existing[0].name
  gateway     = var.vpn_gateway_enabled ? 1 : 0
  connections = var.vpn_gateway_enabled ? length(var.gcp_vpn_interface_ips) : 0
  # Each tunnel's BGP session runs over a link-local /30 in Azure's APIPA range: GCP .1, the
  # gateway instance .2 (the same /30s as modules/network/gcp's azure_tunnel_cidrs).
  azure_bgp_ips = [for cidr in var.bgp_tunnel_cidrs : cidrhost(cidr, 2)]
  gcp_bgp_ips   = [for cidr in var.bgp_tunnel_cidrs : cidrhost(cidr, 1)]
}

# -- The VPN gateway to GCP's HA VPN (the Azure spoke of the NCC hub) ---------------------------

resource "azurerm_subnet" "gateway" {
  count                = local.gateway
  name                 = "GatewaySubnet" # the name Azure requires of a gateway's subnet
  resource_group_name  = var.resource_group_name
  virtual_network_name = local.vnet_name
  address_prefixes     = [var.gateway_subnet_cidr]
}

resource "azurerm_public_ip" "gateway" {
  count               = var.vpn_gateway_enabled ? 2 : 0 # one per active-active instance
  name                = "${var.gateway_name}-ip-${count.index}"
  resource_group_name = var.resource_group_name
  location            = var.location
  allocation_method   = "Static"
  sku                 = "Standard"
  zones               = var.gateway_zones
  tags                = var.tags
}

resource "azurerm_virtual_network_gateway" "this" {
  count               = local.gateway
  name                = var.gateway_name
  resource_group_name = var.resource_group_name
  location            = var.location
  type                = "Vpn"
  vpn_type            = "RouteBased"
  active_active       = true
  bgp_enabled         = true
  sku                 = var.gateway_sku
  generation          = "Generation2"
  tags                = var.tags

  dynamic "ip_configuration" {
    for_each = azurerm_public_ip.gateway
    content {
      name                          = "vnetGatewayConfig${ip_configuration.key}"
      public_ip_address_id          = ip_configuration.value.id
      private_ip_address_allocation = "Dynamic"
      subnet_id                     = azurerm_subnet.gateway[0].id
    }
  }

  bgp_settings {
    asn = var.bgp_asn

    dynamic "peering_addresses" {
      for_each = azurerm_public_ip.gateway
      content {
        ip_configuration_name = "vnetGatewayConfig${peering_addresses.key}"
        apipa_addresses       = [local.azure_bgp_ips[peering_addresses.key]]
      }
    }
  }
}

resource "azurerm_local_network_gateway" "gcp" {
  count               = local.connections
  name                = "${var.gateway_name}-gcp-${count.index}"
  resource_group_name = var.resource_group_name
  location            = var.location
  gateway_address     = var.gcp_vpn_interface_ips[count.index]
  tags                = var.tags

  bgp_settings {
    asn                 = var.gcp_bgp_asn
    bgp_peering_address = local.gcp_bgp_ips[count.index]
  }
}

resource "azurerm_virtual_network_gateway_connection" "gcp" {
  count                      = local.connections
  name                       = "${var.gateway_name}-gcp-${count.index}"
  resource_group_name        = var.resource_group_name
  location                   = var.location
  type                       = "IPsec"
  virtual_network_gateway_id = azurerm_virtual_network_gateway.this[0].id
  local_network_gateway_id   = azurerm_local_network_gateway.gcp[count.index].id
  shared_key                 = var.gcp_shared_key
  connection_protocol        = "IKEv2"
  bgp_enabled                = true
  tags                       = var.tags

  # BGP from each gateway instance's APIPA address, as GCP's router peers expect.
  custom_bgp_addresses {
    primary   = local.azure_bgp_ips[0]
    secondary = local.azure_bgp_ips[1]
  }

  lifecycle {
    precondition {
      condition     = var.gcp_shared_key != null
      error_message = "The connections to GCP need gcp_shared_key (the secret store's, as TF_VAR_gcp_shared_key)."
    }
  }
}
