"""HybridOps' shared kernel: contracts, inventory, client factory, decision, CLI, lab."""
