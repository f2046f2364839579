"""Layer 2, learn: the CIFAR ResNet-18 and how it is trained and evaluated (the utility side)."""
