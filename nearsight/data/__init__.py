"""Training data: scaling of descriptors and LDOS (splits and loaders come next)."""
