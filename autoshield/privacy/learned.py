"""The learned inverse (issue #36, `--attacker learned`): per cell, a network trained on public images to undo it.

Public means the judge's training split (`privacy.reference.judge_training_split`), never the victim pool; the
stored network keeps the dataset indices it trained on, so that anyone can check. A cell whose op has an exact
inverse (`data.inverse.exact`) needs no network: the learned attacker undoes it as the post-hoc one does. Each
network is trained once per (cell, data, seed, recipe) on a machine and cached like the judge, and only when an
attack first needs it: a table that already holds every row a study asks for costs no training. A row of the attack
table names the attacker by that recipe (`LearnedInverse.name`), not by the weights: one recipe trains weights that
differ by rounding from one machine class to the next, as the attack itself does (RESULTS.md, 2026-12-05), so a
class's rows are its sample of the same attacker, and each row keeps the digest of the weights that scored it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
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
class Network:
    """One cell's trained inverse, as this machine holds it."""

    module: InverseNet
    digest: str  # of its weights: what a row it scored records
    seconds: float  # what training it cost, on the machine that trained it
    trained_on: torch.Tensor  # the training-split indices it learned from


@dataclass(frozen=True)
class LearnedInverse:
    """The learned attacker's undo, in the form `Policy.apply(..., using=)` takes: each cell's network where it has
    one, the post-hoc inverse elsewhere. A network ignores the sign: it learned both. The names and keys it gives
    need only the recipes; `network` trains (or reads) a cell's weights on first use."""

    recipes: Mapping[Cell, str]  # of what each network's training depends on but rounding (`recipe_key`)
    network: Callable[[Cell], Network]  # a cell's network, trained or read on first use, then held

    def __call__(
        self, pixels: torch.Tensor, op: str, magnitude: int, *, signs: torch.Tensor | None = None
    ) -> torch.Tensor:
        cell = Cell.of(op, magnitude)
        if cell not in self.recipes:
            return invert_op(pixels, op, magnitude, signs=signs)
        network = self.network(cell).module
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
        return {"network": self.network(cell).digest} if cell in self.recipes else {}


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
    """The learned inverse of `cells`: each one's network read from this machine's cache or trained on the judge's
    training split, when an attack first needs it (a bar inside the caller's bar, where `progress`)."""
    public = functools.cache(lambda: judge_training_split(data, profile))

    def train(cell: Cell) -> dict[str, Any]:
        network = inverse_network(seed=profile.seed)
        fitted = fit_inverse(
            network,
            public().images,
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
            "indices": public().indices.to(torch.int32),
        }

    @functools.cache
    def network(cell: Cell) -> Network:
        build = functools.partial(train, cell)
        stored, _ = shared_artifact(inverse_path(data, cell, profile), load=read_stored, build=build, save=torch.save)
        module = inverse_network(seed=profile.seed)
        module.load_state_dict(stored["state_dict"])
        return Network(
            module=module.to(device).eval(),
            digest=model_digest(module, length=NAME_LENGTH),
            seconds=float(stored["seconds"]),
            trained_on=stored["indices"].long(),
        )

    recipes = {
        cell: recipe_key(cell=cell, profile=profile, data=data.fingerprint)
        for cell in sorted({c for c in cells if needs_network(c)})
    }
    return LearnedInverse(recipes=recipes, network=network)
