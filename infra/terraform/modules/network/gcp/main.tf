# The network on GCP: a subnetwork (with pod and service ranges) for the burst node pool in the
# cluster's VPC, created with the VPC when the caller has none; and, when ncc_enabled, the
# Network Connectivity Center hub the sites and clouds meet at, hub-and-spoke:
#   - the VPC itself as a linked_vpc_network spoke;
#   - the on-prem site through HA VPN (two tunnels, BGP on a Cloud Router) as a
#     linked_vpn_tunnels spoke with site-to-site data transfer;
#   - Azure through the same HA VPN gateway to its active-active VPN gateway as another VPN
#     spoke (the matching side is modules/network/azure);
#   - Dedicated or Partner Interconnect VLAN attachments, when given, as an attachment spoke.
# Each attachment is made only when its inputs are given: no peer IPs, no tunnels; no VLAN
# attachment ids, no interconnect spoke. Shared secrets are variables marked sensitive (the
# deployment feeds them from the secret store as TF_VAR_...), never literals here.
terraform {
  required_version = ">= 1.4"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 7.0"
    }
  }
}

locals {
  network_id        = var.create_network ? google_compute_network.this[0].id : data.google_compute_network.existing[0].id
  network_self_link = var.create_network ? google_compute_network.this[0].self_link : data.google_compute_network.existing[0].self_link

  onprem_vpn = var.ncc_enabled && length(var.onprem_peer_ips) > 0
  azure_vpn  = var.ncc_enabled && length(var.azure_gateway_ips) > 0
  vpn        = local.onprem_vpn || local.azure_vpn

  # One tunnel per HA VPN interface (0 and 1) and peer; each tunnel's BGP session runs over a
  # link-local /30: this side .1, the peer .2.
  tunnels = merge(
    {
      for i in range(local.onprem_vpn ? 2 : 0) : "onprem-${i}" => {
        peer           = "onprem"
        interface      = i
        peer_interface = min(i, length(var.onprem_peer_ips) - 1)
        cidr           = var.onprem_tunnel_cidrs[i]
        peer_asn       = var.onprem_asn
      }
    },
    {
      for i in range(local.azure_vpn ? 2 : 0) : "azure-${i}" => {
        peer           = "azure"
        interface      = i
        peer_interface = min(i, length(var.azure_gateway_ips) - 1)
        cidr           = var.azure_tunnel_cidrs[i]
        peer_asn       = var.azure_asn
      }
    },
  )
}

resource "google_compute_network" "this" {
  count                   = var.create_network ? 1 : 0
  name                    = var.network_name
  project                 = var.project
  auto_create_subnetworks = false
}

data "google_compute_network" "existing" {
  count   = var.create_network ? 0 : 1
  name    = var.network_name
  project = var.project
}

resource "google_compute_subnetwork" "burst" {
  count                    = var.create_subnetwork ? 1 : 0
  name                     = var.subnet_name
  project                  = var.project
  region                   = var.region
  network                  = local.network_id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "${var.subnet_name}-pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "${var.subnet_name}-services"
    ip_cidr_range = var.services_cidr
  }
}

# The subnetwork had no count before the connectivity came: keep its state.
moved {
  from = google_compute_subnetwork.burst
  to   = google_compute_subnetwork.burst[0]
}

# -- Network Connectivity Center ------------------------------------------------------------

resource "google_network_connectivity_hub" "this" {
  count       = var.ncc_enabled ? 1 : 0
  name        = var.hub_name
  project     = var.project
  description = "HybridOps: on-prem, Azure and the GCP failover VPC, hub-and-spoke."
}

resource "google_network_connectivity_spoke" "vpc" {
  count       = var.ncc_enabled ? 1 : 0
  name        = "${var.hub_name}-vpc"
  project     = var.project
  location    = "global" # VPC spokes are global
  hub         = google_network_connectivity_hub.this[0].id
  description = "The burst and failover VPC."

  linked_vpc_network {
    uri = local.network_self_link
  }
}

resource "google_network_connectivity_spoke" "onprem" {
  count       = local.onprem_vpn ? 1 : 0
  name        = "${var.hub_name}-onprem"
  project     = var.project
  location    = var.region
  hub         = google_network_connectivity_hub.this[0].id
  description = "The on-prem site over HA VPN."

  linked_vpn_tunnels {
    uris                       = [for key, tunnel in google_compute_vpn_tunnel.this : tunnel.self_link if local.tunnels[key].peer == "onprem"]
    site_to_site_data_transfer = true
  }
}

resource "google_network_connectivity_spoke" "azure" {
  count       = local.azure_vpn ? 1 : 0
  name        = "${var.hub_name}-azure"
  project     = var.project
  location    = var.region
  hub         = google_network_connectivity_hub.this[0].id
  description = "Azure's VPN gateway over HA VPN."

  linked_vpn_tunnels {
    uris                       = [for key, tunnel in google_compute_vpn_tunnel.this : tunnel.self_link if local.tunnels[key].peer == "azure"]
    site_to_site_data_transfer = true
  }
}

resource "google_network_connectivity_spoke" "interconnect" {
  count       = var.ncc_enabled && length(var.interconnect_attachment_ids) > 0 ? 1 : 0
  name        = "${var.hub_name}-interconnect"
  project     = var.project
  location    = var.region
  hub         = google_network_connectivity_hub.this[0].id
  description = "The on-prem site over Interconnect VLAN attachments."

  linked_interconnect_attachments {
    uris                       = var.interconnect_attachment_ids
    site_to_site_data_transfer = true
  }
}

# -- HA VPN with BGP --------------------------------------------------------------------------

resource "google_compute_ha_vpn_gateway" "this" {
  count   = local.vpn ? 1 : 0
  name    = "${var.hub_name}-ha-vpn"
  project = var.project
  region  = var.region
  network = local.network_id
}

resource "google_compute_router" "this" {
  count   = local.vpn ? 1 : 0
  name    = "${var.hub_name}-router"
  project = var.project
  region  = var.region
  network = local.network_id

  # The VPC's subnets; with site-to-site data transfer on, NCC has the router advertise the
  # prefixes learned from the other hybrid spokes too (on-prem <-> Azure through the hub).
  bgp {
    asn            = var.router_asn
    advertise_mode = "DEFAULT"
  }
}

resource "google_compute_external_vpn_gateway" "onprem" {
  count           = local.onprem_vpn ? 1 : 0
  name            = "${var.hub_name}-onprem-peer"
  project         = var.project
  redundancy_type = length(var.onprem_peer_ips) > 1 ? "TWO_IPS_REDUNDANCY" : "SINGLE_IP_INTERNALLY_REDUNDANT"

  dynamic "interface" {
    for_each = var.onprem_peer_ips
    content {
      id         = interface.key
      ip_address = interface.value
    }
  }
}

resource "google_compute_external_vpn_gateway" "azure" {
  count           = local.azure_vpn ? 1 : 0
  name            = "${var.hub_name}-azure-peer"
  project         = var.project
  redundancy_type = length(var.azure_gateway_ips) > 1 ? "TWO_IPS_REDUNDANCY" : "SINGLE_IP_INTERNALLY_REDUNDANT"

  # The public IPs of Azure's active-active VPN gateway (modules/network/azure's
  # gateway_public_ips).
  dynamic "interface" {
    for_each = var.azure_gateway_ips
    content {
      id         = interface.key
      ip_address = interface.value
    }
  }
}

resource "google_compute_vpn_tunnel" "this" {
  for_each                        = local.tunnels
  name                            = "${var.hub_name}-${each.key}"
  project                         = var.project
  region                          = var.region
  vpn_gateway                     = google_compute_ha_vpn_gateway.this[0].id
  vpn_gateway_interface           = each.value.interface
  peer_external_gateway           = each.value.peer == "onprem" ? google_compute_external_vpn_gateway.onprem[0].id : google_compute_external_vpn_gateway.azure[0].id
  peer_external_gateway_interface = each.value.peer_interface
  shared_secret                   = each.value.peer == "onprem" ? var.onprem_shared_secret : var.azure_shared_secret
  router                          = google_compute_router.this[0].id
  ike_version                     = 2

  lifecycle {
    precondition {
      condition     = (each.value.peer == "onprem" ? var.onprem_shared_secret : var.azure_shared_secret) != null
      error_message = "A VPN tunnel needs its shared secret (onprem_shared_secret or azure_shared_secret)."
    }
  }
}

resource "google_compute_router_interface" "this" {
  for_each   = local.tunnels
  name       = "${var.hub_name}-${each.key}"
  project    = var.project
  region     = var.region
  router     = google_compute_router.this[0].name
  ip_range   = "${cidrhost(each.value.cidr, 1)}/${split("/", each.value.cidr)[1]}"
  vpn_tunnel = google_compute_vpn_tunnel.this[each.key].name
}

resource "google_compute_router_peer" "this" {
  for_each                  = local.tunnels
  name                      = "${var.hub_name}-${each.key}"
  project                   = var.project
  region                    = var.region
  router                    = google_compute_router.this[0].name
  interface                 = google_compute_router_interface.this[each.key].name
  ip_address                = cidrhost(each.value.cidr, 1)
  peer_ip_address           = cidrhost(each.value.cidr, 2)
  peer_asn                  = each.value.peer_asn
  advertised_route_priority = 100
}
