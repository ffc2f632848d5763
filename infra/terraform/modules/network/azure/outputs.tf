output "subnet_id" {
  description = "Resource id of the burst subnet."
  value       = azurerm_subnet.burst.id
}
