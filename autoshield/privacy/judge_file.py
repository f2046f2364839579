"""A judge as bytes: what moves between machines (`autoshield judge export/import`) and into a study's database.

Attack accuracy is one judge's verdict, and judges retrained on two machines differ (docs/design.md §4), so a
study keeps the weights it is scored with under their SHA-256. A judge only fits a study whose network width,
data and victim pool it shares: it must never have seen the victims, and it must read the same pixels. Its
training recipe may differ (a better judge trained elsewhere is still a judge of the same victims).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autoshield.core.config import Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import Cifar10
from autoshield.data.victims import victim_pool
from autoshield.learn.models import build_model
from autoshield.learn.train import Accuracy
from autoshield.privacy.cache import model_digest

FORMAT = "autoshield-judge/1"
DIGEST_LENGTH = 64  # the whole SHA-256: a study's judge is named by it


@dataclass(frozen=True)
class JudgeIdentity:
    """What a judge must share with the study it scores."""

    width: int
    data: str  # the data's fingerprint
    pool_per_label: int  # the held-out victim pool it never trained on
    pool_seed: int

    @classmethod
    def of(cls, data: Cifar10, profile: Profile) -> JudgeIdentity:
        pool = victim_pool(profile)
        return cls(
            width=profile.reference_width, data=data.fingerprint, pool_per_label=pool.per_label, pool_seed=pool.seed
        )


@dataclass(frozen=True)
class JudgeFile:
    identity: JudgeIdentity
    state_dict: dict[str, torch.Tensor]
    accuracy: Accuracy  # clean test accuracy, measured where it was trained
    digest: str  # SHA-256 of the weights (`privacy.cache.model_digest`)

    def model(self, *, seed: int, device: torch.device) -> nn.Module:
        """The judge, in eval mode on `device`."""
        model = build_model(width=self.identity.width, seed=seed)
        model.load_state_dict(self.state_dict)
        return model.to(device).eval()


def judge_file(*, model: nn.Module, accuracy: Accuracy, identity: JudgeIdentity) -> JudgeFile:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return JudgeFile(identity, state, accuracy, model_digest(model, length=DIGEST_LENGTH))


def judge_bytes(judge: JudgeFile) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "identity": vars(judge.identity),
            "state_dict": judge.state_dict,
            "overall": judge.accuracy.overall,
            "per_label": list(judge.accuracy.per_label),
        },
        buffer,
    )
    return buffer.getvalue()


def read_judge(payload: bytes, *, source: str) -> JudgeFile:
    """The judge in `payload`; anything else, or a judge whose weights no longer match, is refused in one line."""
    try:
        saved: Any = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise ValueError
        identity = JudgeIdentity(**saved["identity"])
        model = build_model(width=identity.width, seed=0)
        model.load_state_dict(saved["state_dict"])
        accuracy = Accuracy(float(saved["overall"]), tuple(float(a) for a in saved["per_label"]))
    except Exception:  # any parser's or loader's error: the bytes are not one of our judges
        raise AutoshieldError(f"{source} is not an autoshield judge") from None
    return judge_file(model=model, accuracy=accuracy, identity=identity)


def check_fits(judge: JudgeFile, identity: JudgeIdentity, *, source: str) -> None:
    """Refuse, in one line, a judge of another width, data or victim pool than the study's."""
    found, wanted = vars(judge.identity), vars(identity)
    if differences := [f"{k} {found[k]!r}, not {v!r}" for k, v in wanted.items() if found[k] != v]:
        raise AutoshieldError(f"{source} judges another setting: {'; '.join(differences)}")
