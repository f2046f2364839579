"""How the attack's gradient loss falls, restart by restart, and what an early-stop rule would save and lose on it:
the evidence behind issue #35's default `attack.stop_patience` / `attack.stop_tolerance`, chosen before the paired
non-inferiority run (`attack_budget.py`) judges it on the scored victims.

It attacks Identity on held-out victims from pool slot `--slot` (default 99: outside the scored slots [0, 5) and
any confirmation slots) at the profile's full budget, records every restart's loss at every iteration, and replays
each candidate rule (patience x tolerance) on the recorded curves, as `privacy.plateau.Plateau` applies it: the
iterations it saves, and the kept restart's final gradient loss against the full run's (ratio > 1: worse).

    python benchmarks/attack_plateau.py --labels 3 --patience 100 200 400 800 --tolerance 1e-3 1e-2 5e-2
"""

from __future__ import annotations

import statistics

import torch
from common import logged, machine, parser

from autoshield.core.config import load_profile
from autoshield.data.cifar import image_box, load_cifar10, normalize
from autoshield.data.victims import victim_pool
from autoshield.evaluation.reconstruct import start_seed
from autoshield.learn.models import build_model
from autoshield.privacy import attack
from autoshield.privacy.attack import GradientInversion
from autoshield.privacy.plateau import Plateau
from autoshield.privacy.threat import leak_gradients


def curves(profile_name: str, *, data_root: object, slot: int, labels: int) -> torch.Tensor:
    """Every restart's gradient loss at every iteration, `[restarts x victims, iterations]`, from a run whose stop
    rule never fires (a patience beyond the budget), recorded where `Plateau` reads it."""
    profile = load_profile(profile_name, overrides=(f"attack.stop_patience={100_000}",))
    data = load_cifar10(data_root)
    victims = victim_pool(profile).draw(data.train, start=slot, count=1)
    keep = slice(0, labels)
    images, ys, ids = normalize(victims.images[keep]), victims.labels[keep], victims.indices[keep]
    model = build_model(width=profile.width, norm=profile.norm, seed=profile.seed).eval()
    seen: list[torch.Tensor] = []

    class Recording(Plateau):
        def update(self, iteration: int, active: torch.Tensor, loss: torch.Tensor) -> bool:
            seen.append(loss.float().clone())
            return super().update(iteration, active, loss)

    attack.Plateau = Recording  # type: ignore[misc]  # the attack consults the rule through its module's name
    seeds = [start_seed([int(i)], seed=profile.seed) for i in ids]
    GradientInversion(profile.attack, box=image_box()).reconstruct(
        model, leak_gradients(model, images, ys), ys, seeds=seeds, progress=True
    )
    return torch.stack(seen, dim=1)


def replay(loss: torch.Tensor, *, patience: int, tolerance: float, restarts: int) -> tuple[float, list[float]]:
    """The share of iterations a rule saves, and per victim the kept restart's final loss over the full run's."""
    entries, iterations = loss.shape
    rule = Plateau(entries, patience=patience, tolerance=tolerance, device=torch.device("cpu"))
    for t in range(iterations):
        active = rule.running.nonzero().flatten()
        if not len(active):
            break
        rule.update(t, active, loss[active, t])
    at = torch.clamp(rule.steps, max=iterations - 1)  # the loss where it stopped: one step after its last update
    stopped = loss[torch.arange(entries), at].reshape(restarts, -1).min(0).values
    full = loss[:, -1].reshape(restarts, -1).min(0).values
    return 1 - rule.steps.sum().item() / loss.numel(), (stopped / full).tolist()


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--profile", default="quick")
    p.add_argument("--slot", type=int, default=99, help="the pool slot whose victims are attacked")
    p.add_argument("--labels", type=int, default=3, help="victims: the slot's first N labels")
    p.add_argument("--patience", type=int, nargs="+", default=[100, 200, 400, 800])
    p.add_argument("--tolerance", type=float, nargs="+", default=[1e-3, 1e-2, 5e-2])
    args = p.parse_args()
    profile = load_profile(args.profile)
    print(f"machine: {machine()}; profile {args.profile} ({profile.fingerprint()}); slot {args.slot}", flush=True)
    with logged():
        loss = curves(args.profile, data_root=args.data_root, slot=args.slot, labels=args.labels)
    restarts = profile.attack.restarts
    marks = [0, 100, 500, 1000, 1124, 1125, 1500, 1874, 1875, 2500, 2624, 2625, loss.shape[1] - 1]
    for mark in (m for m in marks if m < loss.shape[1]):
        print(f"iteration {mark}: median loss {loss[:, mark].median():.4f}, min {loss[:, mark].min():.4f}")
    for patience in args.patience:
        for tolerance in args.tolerance:
            saved, ratio = replay(loss, patience=patience, tolerance=tolerance, restarts=restarts)
            print(
                f"patience {patience}, tolerance {tolerance:g}: saves {saved:.0%} of the iterations; kept loss / "
                f"full run's: median {statistics.median(ratio):.3f}, worst {max(ratio):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
