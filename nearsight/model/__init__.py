"""Networks that map descriptors to the LDOS (training and bundles come next)."""
