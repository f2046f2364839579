"""Layer 3, dp: DP-SGD in three parts, as Opacus keeps them: its settings, the accountants, the training engine."""
