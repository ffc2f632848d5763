"""The contracts of HybridOps: a module per runbook plus the shared base (``base``) and the
site steps every runbook uses (``sites``). Every model here may be recorded in a history."""
