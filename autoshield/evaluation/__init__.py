"""Layer 5, evaluation: one policy (or one DP-SGD setting) in, its utility and privacy numbers out, and the
pictures that show them."""
