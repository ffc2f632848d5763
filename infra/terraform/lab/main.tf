resource "terraform_data" "pool" {
  input = {
    name     = var.node_pool_name
    labels   = var.labels
    run_id   = var.run_id
    endpoint = var.cluster_endpoint
  }
}

# One resource per node: scaling out plans creations, scaling in plans deletions (which the
# driver refuses unless the caller allows them).
resource "terraform_data" "node" {
  count = var.node_count

  input = {
    pool  = terraform_data.pool.output.name
    index = count.index
  }
}
