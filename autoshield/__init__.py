"""autoshield: per-label augmentation policies against gradient inversion, compared with DP-SGD."""

__version__ = "0.1.0"
