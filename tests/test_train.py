from __future__ import annotations

import dataclasses

import torch
from torch.overrides import TorchFunctionMode

from autoshield.core.config import Profile, TrainConfig, load_profile
from autoshield.data.cifar import stratified_subset
from autoshield.data.policy import Policy
from autoshield.learn.models import ResNet18, build_model, count_parameters
from autoshield.learn.train import crop_flip, fit, train_classifier

CPU = torch.device("cpu")


def test_resnet18_parameter_count_and_norms():
    assert count_parameters(ResNet18(width=64)) == 11_173_962
    group = ResNet18(width=8, norm="group")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in group.modules())
    assert group(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not any(getattr(m, "inplace", False) for m in group.modules())


def test_same_seed_same_weights():
    a, b = build_model(width=8, seed=3), build_model(width=8, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = build_model(width=8, seed=4)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_crop_flip_keeps_shape_and_content_per_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = crop_flip(images, generator=torch.Generator().manual_seed(0), padding=0)
    for i in range(2):
        assert torch.equal(out[i], images[i]) or torch.equal(out[i], images[i].flip(-1))


def _train(data, seed: int, epochs: int = 3):
    config = TrainConfig(epochs=epochs, batch_size=50, lr=0.05, eval_batch_size=100)
    return train_classifier(
        train=data.train,
        test=data.test,
        policy=Policy.identity(),
        width=8,
        norm="batch",
        config=config,
        seed=seed,
        device=CPU,
    )


def test_training_lowers_loss_learns_and_is_bit_identical(data):
    first, second = _train(data, seed=0), _train(data, seed=0)
    assert first.epoch_losses[-1] < first.epoch_losses[0]
    assert first.epoch_losses == second.epoch_losses
    assert all(
        torch.equal(p, q)
        for p, q in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True)
    )
    assert first.accuracy == second.accuracy
    assert first.accuracy.overall > 0.3  # 10 synthetic classes: chance is 0.1
    assert len(first.accuracy.per_label) == 10


def test_policy_changes_training_data(data):
    train = stratified_subset(data.train, per_class=5, seed=0)
    config = TrainConfig(epochs=1, batch_size=25, eval_batch_size=100)
    kwargs = dict(train=train, test=data.test, width=8, norm="batch", config=config, seed=0, device=CPU)
    plain = train_classifier(policy=Policy.identity(), **kwargs)
    inverted = train_classifier(policy=Policy.parse("Invert"), **kwargs)
    assert plain.epoch_losses != inverted.epoch_losses


class _HostReads(TorchFunctionMode):
    """Counts the calls that make a host wait for a GPU (copies, reads of values) and where they came from."""

    WAITS = frozenset({"to", "cpu", "item", "tolist", "numpy", "__float__", "__int__", "__bool__"})

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.WAITS:
            self.calls.append(func.__name__)
        return func(*args, **(kwargs or {}))


def test_training_steps_never_wait_for_the_device():
    """Per-step copies or reads stall a GPU's queue every step (issue #17); counted here on the CPU by the calls
    that would: twice the steps must not add one. The old loop copied three crop/flip draws per step."""
    images, labels = (torch.rand(64, 3, 32, 32) * 255).to(torch.uint8), torch.arange(64) % 10
    counts = []
    for batch_size in (16, 8):  # 4 steps, then 8 steps, in one epoch
        with _HostReads() as reads:
            fit(
                build_model(width=4, seed=0),
                images,
                labels,
                config=TrainConfig(epochs=1, batch_size=batch_size),
                seed=0,
                device=CPU,
            )
        counts.append(len(reads.calls))
    assert counts[0] == counts[1], f"host reads grow with steps: {counts}"


def test_the_default_network_learns_a_separable_task(data):
    """Issue #33: the network every profile trains and attacks (no normalisation) must learn, not sit at chance,
    on the synthetic task at `smoke`'s width and optimiser."""
    profile = load_profile("smoke")
    config = dataclasses.replace(profile.train, epochs=10)  # 55 % on this CPU; 5 epochs reach only 30 %
    result = train_classifier(
        train=data.train, test=data.test, policy=Policy.identity(), width=profile.width, norm=Profile().norm,
        config=config, seed=0, device=CPU,
    )  # fmt: skip
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert result.accuracy.overall > 0.4, result.accuracy  # 10 classes: chance is 0.1
