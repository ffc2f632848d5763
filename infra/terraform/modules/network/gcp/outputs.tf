output "subnetwork_id" {
  description = "Id of the burst subnetwork."
  value       = google_compute_subnetwork.burst.id
}

output "pods_range_name" {
  description = "Name of the secondary range for pods."
  value       = "${var.subnet_name}-pods"
}
