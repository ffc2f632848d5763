# An RKE2 node image: Ubuntu 24.04 with RKE2 installed (not configured, not started) by the
# rke2_server role of infra/ansible, in bake mode. Built locally with QEMU (the lab, on-prem
# KVM) or as an Azure managed image (burst node pools). Nodes get their token and join address
# at first boot, never in the image.
#
#   packer init infra/packer
#   packer build -machine-readable -only=qemu.rke2-node -var-file=vars.pkrvars.json infra/packer
#
# Secrets come from the environment only: PKR_VAR_azure_client_secret (the runner's secret_env).

packer {
  required_version = ">= 1.10.0"
  required_plugins {
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = "~> 1.1"
    }
    azure = {
      source  = "github.com/hashicorp/azure"
      version = "~> 2.1"
    }
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = "~> 1.1"
    }
  }
}

variable "run_id" {
  type        = string
  description = "The workflow run this image is for: part of its name, so a retried build never collides."
}

variable "rke2_version" {
  type    = string
  default = "v1.31.4+rke2r1"
}

variable "base_image_url" {
  type    = string
  default = "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
}

variable "base_image_checksum" {
  type    = string
  default = "file:https://cloud-images.ubuntu.com/noble/current/SHA256SUMS"
}

variable "output_dir" {
  type    = string
  default = "output/rke2-node"
}

variable "ssh_username" {
  type    = string
  default = "packer"
}

variable "ssh_public_key" {
  type        = string
  description = "The public half of ssh_private_key_file, given to the bake user by cloud-init."
  default     = ""
}

variable "ssh_private_key_file" {
  type    = string
  default = "~/.ssh/id_ed25519"
}

variable "azure_subscription_id" {
  type    = string
  default = ""
}

variable "azure_tenant_id" {
  type    = string
  default = ""
}

variable "azure_client_id" {
  type    = string
  default = ""
}

variable "azure_client_secret" {
  type      = string
  default   = ""
  sensitive = true
}

variable "azure_resource_group" {
  type    = string
  default = "hybridops-images"
}

variable "azure_location" {
  type    = string
  default = "westeurope"
}

locals {
  image_name = "rke2-node-${replace(var.rke2_version, "+", "-")}-${var.run_id}"
}

source "qemu" "rke2-node" {
  iso_url          = var.base_image_url
  iso_checksum     = var.base_image_checksum
  disk_image       = true
  disk_size        = "20G"
  format           = "qcow2"
  accelerator      = "kvm"
  headless         = true
  output_directory = var.output_dir
  vm_name          = "${local.image_name}.qcow2"
  cd_label         = "cidata"
  cd_content = {
    "meta-data" = ""
    "user-data" = templatefile("${path.root}/cloud-init.pkrtpl.yaml", {
      username = var.ssh_username
      ssh_key  = var.ssh_public_key
    })
  }
  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "15m"
  shutdown_command     = "sudo shutdown -P now"
}

source "azure-arm" "rke2-node" {
  subscription_id                   = var.azure_subscription_id
  tenant_id                         = var.azure_tenant_id
  client_id                         = var.azure_client_id
  client_secret                     = var.azure_client_secret
  managed_image_name                = local.image_name
  managed_image_resource_group_name = var.azure_resource_group
  location                          = var.azure_location
  os_type                           = "Linux"
  image_publisher                   = "Canonical"
  image_offer                       = "ubuntu-24_04-lts"
  image_sku                         = "server"
  vm_size                           = "Standard_D2s_v5"
  azure_tags = {
    role   = "rke2-node"
    run_id = var.run_id
  }
}

build {
  name    = "rke2-node"
  sources = ["source.qemu.rke2-node", "source.azure-arm.rke2-node"]

  provisioner "shell" {
    inline = ["cloud-init status --wait || true"]
  }

  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/rke2-server.yml"
    user          = build.User
    extra_arguments = [
      "--extra-vars", "rke2_hosts=default rke2_server_bake=true rke2_server_version=${var.rke2_version}",
    ]
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False"]
  }

  provisioner "shell" {
    inline = [
      "sudo cloud-init clean --logs",
      "sudo truncate -s 0 /etc/machine-id",
    ]
  }

  post-processor "manifest" {
    output     = "${var.output_dir}/manifest.json"
    strip_path = true
  }
}
