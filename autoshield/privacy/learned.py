"""The learned inverse (issue #36, `--attacker learned`): per cell, a network trained on public images to undo it.

Public means the judge's training split (`privacy.reference.judge_training_split`), never the victim pool; the
stored network keeps the dataset indices it trained on, so that anyone can check. A cell whose op has an exact
inverse (`data.inverse.exact`) needs no network: the learned attacker undoes it as the post-hoc one does. Each
network is trained once per (cell, data, seed, recipe) on a machine and cached like the judge. A row of the attack
table names the attacker by that recipe (`LearnedInverse.name`), not by the weights: one recipe trains weights that
differ by rounding from one machine class to the next, as the attack itself does (RESULTS.md, 2026-12-05), so a
class's rows are its sample of the same attacker, and each row keeps the digest of the weights that scored it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from autoshield.core.config import Profile
from autoshield.core.files import cache_dir, shared_artifact
from autoshield.core.kernels import chosen_kernels
from autoshield.data.cifar import Cifar10
from autoshield.data.inverse import exact, invert_op
from autoshield.data.ops import apply_op
from autoshield.data.policy import IDENTITY, Cell
from autoshield.data.victims import victim_pool
from autoshield.learn.inverse_net import INVERSE, InverseNet, fit_inverse, inverse_network
from autoshield.learn.stored import read_stored
from autoshield.privacy.cache import model_digest
from autoshield.privacy.reference import judge_training_split

NAME_LENGTH = 12  # hex digits of a recipe in a row's attacker name, and of a network's digest in a row


def needs_network(cell: Cell) -> bool:
    """Whether the learned attacker trains a network for `cell`: its op has no exact inverse."""
    return cell != IDENTITY and not exact(cell.op)


@dataclass(frozen=True)
class LearnedInverse:
    """The learned attacker's undo, in the form `Policy.apply(..., using=)` takes: each cell's network where it has
    one, the post-hoc inverse elsewhere. A network ignores the sign: it learned both."""

    networks: Mapping[Cell, InverseNet]
    digests: Mapping[Cell, str]  # of each network's weights: what a row it scored records
    recipes: Mapping[Cell, str]  # of what each network's training depends on but rounding (`recipe_key`)
    seconds: Mapping[Cell, float]  # what training each network cost, on the machine that trained it
    trained_on: Mapping[Cell, torch.Tensor]  # the training-split indices each network learned from

    def __call__(
        self, pixels: torch.Tensor, op: str, magnitude: int, *, signs: torch.Tensor | None = None
    ) -> torch.Tensor:
        network = self.networks.get(Cell.of(op, magnitude))
        if network is None:
            return invert_op(pixels, op, magnitude, signs=signs)
        device = next(network.parameters()).device
        with torch.no_grad():
            return network(pixels.to(device)).clamp(0, 1).to(pixels.device)

    def name(self, cell: Cell) -> str:
        """The attacker's name in `cell`'s rows of the attack table: with the network's recipe where one undoes it;
        elsewhere the learned attacker is the post-hoc one, and shares its rows (a table built before the learned
        attacker then needs no reconstruction of such a cell again)."""
        return f"learned@{self.recipes[cell]}" if cell in self.recipes else "posthoc"

    def provenance(self, cell: Cell) -> dict[str, str]:
        """What a row of `cell` records of the network that scored it: its weights' digest (none: no network)."""
        return {"network": self.digests[cell]} if cell in self.digests else {}


def _settings(cell: Cell, profile: Profile) -> dict[str, Any]:
    """What a network's weights depend on, but the data and the kernels that round its training."""
    pool = victim_pool(profile)
    return {
        "cell": str(cell),
        "seed": profile.seed,
        "recipe": asdict(INVERSE),
        "train_per_class": profile.reference_train_per_class,
        "victim_pool": {"per_label": pool.per_label, "seed": pool.seed},
    }


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:NAME_LENGTH]


def recipe_key(*, cell: Cell, profile: Profile, data: str) -> str:
    """The learned attacker's name for `cell` under `profile` on the data of fingerprint `data`, the same on every
    machine."""
    return _digest({**_settings(cell, profile), "data": data})


def inverse_path(data: Cifar10, cell: Cell, profile: Profile) -> Path:
    """Where this machine keeps `cell`'s network for (data, profile): the key names what its weights depend on, the
    kernels that round its training included."""
    key = _digest({**_settings(cell, profile), "kernels": chosen_kernels()})
    return cache_dir() / "inverses" / f"{str(cell).replace(':', '-')}-{data.fingerprint}-{key}.pt"


def learned_inverse(
    *, cells: Iterable[Cell], data: Cifar10, profile: Profile, device: torch.device, progress: bool = False
) -> LearnedInverse:
    """The learned inverse of `cells`: each one's network trained now on the judge's training split, or read from
    this machine's cache."""
    public = judge_training_split(data, profile)
    networks, digests, recipes, seconds, trained_on = {}, {}, {}, {}, {}
    for cell in sorted({c for c in cells if needs_network(c)}):

        def train(cell: Cell = cell) -> dict[str, Any]:
            network = inverse_network(seed=profile.seed)
            fitted = fit_inverse(
                network,
                public.images,
                transform=lambda batch, signs: apply_op(batch, cell.op, cell.magnitude, signs=signs),
                seed=profile.seed,
                device=device,
                progress=progress,
                description=f"learned inverse of {cell}",
            )
            return {
                "state_dict": {k: v.cpu() for k, v in network.state_dict().items()},
                "losses": list(fitted.losses),
                "seconds": fitted.seconds,
                "indices": public.indices.to(torch.int32),
            }

        stored, _ = shared_artifact(inverse_path(data, cell, profile), load=read_stored, build=train, save=torch.save)
        network = inverse_network(seed=profile.seed)
        network.load_state_dict(stored["state_dict"])
        networks[cell] = network.to(device).eval()
        digests[cell] = model_digest(network, length=NAME_LENGTH)
        recipes[cell] = recipe_key(cell=cell, profile=profile, data=data.fingerprint)
        seconds[cell] = float(stored["seconds"])
        trained_on[cell] = stored["indices"].long()
    return LearnedInverse(networks=networks, digests=digests, recipes=recipes, seconds=seconds, trained_on=trained_on)
