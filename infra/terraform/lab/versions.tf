# The lab root: a node pool modelled with Terraform's built-in `terraform_data` resource, so
# a real terraform (or tofu) runs it with no provider to download and no network. It has the
# same variables and outputs as the azure/ and gcp/ roots, so the driver cannot tell them apart.
terraform {
  required_version = ">= 1.4"
}
