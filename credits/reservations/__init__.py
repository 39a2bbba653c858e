"""Reserve-then-settle: holds for metered work, settled from the provider's webhook."""
