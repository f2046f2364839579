"""Layer 4, privacy: the threat model (what the server observes), the gradient-inversion attacker, the judging
reference classifier, image metrics and the attack cache."""
