"""Layer 1, data: CIFAR-10 as uint8 tensors, the 14 operations, per-label policies and search spaces."""
