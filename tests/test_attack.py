"""The attack must work before any defence result counts (docs/design.md §3)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from autoshield.core.config import AttackConfig, Profile
from autoshield.core.errors import AutoshieldError
from autoshield.data.cifar import denormalize, image_box, normalize
from autoshield.data.ops import apply_op
from autoshield.learn.models import build_model
from autoshield.privacy import per_sample
from autoshield.privacy.attack import GradientInversion, direction, lr_factor, recover_labels, total_variation
from autoshield.privacy.metrics import psnr, ssim
from autoshield.privacy.threat import leak_gradients

from .conftest import synthetic_images


@pytest.fixture(scope="module")
def victims():
    images, labels = synthetic_images(1, seed=7)
    return images[:4], labels[:4]


@pytest.fixture(scope="module")
def model():
    return build_model(width=8, seed=0).eval()


def test_leaked_gradients_equal_autograd_per_image(model, victims):
    images, labels = victims
    x = normalize(images)
    leaked = leak_gradients(model, x, labels)
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i : i + 1]), labels[i : i + 1])
        expected = torch.autograd.grad(loss, list(model.parameters()))
        for got, want in zip(leaked, expected, strict=True):
            torch.testing.assert_close(got[i], want, rtol=1e-4, atol=1e-6)


def test_idlg_recovers_every_label(model):
    images, labels = synthetic_images(2, seed=3)
    recovered = recover_labels(model, leak_gradients(model, normalize(images), labels))
    assert torch.equal(recovered, labels)


def test_batched_and_sequential_paths_agree(model, victims):
    images, labels = victims
    gradients = leak_gradients(model, normalize(images), labels)
    config = dict(iterations=5, tv_weight=1e-4)
    batched = GradientInversion(AttackConfig(mode="batched", **config), box=image_box()).reconstruct(
        model, gradients, labels
    )
    sequential = GradientInversion(AttackConfig(mode="sequential", **config), box=image_box()).reconstruct(
        model, gradients, labels
    )
    assert batched.mode == "batched" and sequential.mode == "sequential"
    torch.testing.assert_close(batched.gradient_loss, sequential.gradient_loss, rtol=1e-3, atol=1e-5)
    # signed steps amplify float noise into occasional flipped pixels; the images must still agree closely
    assert (batched.images - sequential.images).abs().mean() < 1e-3


@pytest.mark.parametrize(
    ("norm", "leak"),
    [("none", 1), ("batch", 2), ("group", 1), ("layer", 2), ("fixup", 1), ("fixup", 2), ("gnws", 1), ("gnws", 2)],
)
def test_unfold_step_equals_plain_autograd_per_problem(norm, leak):
    """The fast path's image gradient and loss against a double backward written out per problem (issue #17); at
    width 4 the deep layers take the Gram-matrix route and the early ones form their gradients."""
    model = build_model(width=4, norm=norm, seed=0).eval()
    images, labels = synthetic_images(1, seed=5)
    images, labels = normalize(images[:4]), labels[:4]
    targets = leak_gradients(model, images, labels, leak_batch=leak)
    norms = torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in targets))
    x = torch.randn(4 // leak, leak, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = labels.view(-1, leak)
    got, got_loss = per_sample.step_fn(model, tv_weight=1e-2, prior=total_variation)(x, y, targets, norms)
    for i in range(len(x)):
        xi = x[i].clone().requires_grad_(True)
        g = torch.autograd.grad(F.cross_entropy(model(xi), y[i]), list(model.parameters()), create_graph=True)
        dot = sum((a * t[i]).sum() for a, t in zip(g, targets, strict=True))
        rec = 1 - dot / (torch.sqrt(sum(a.pow(2).sum() for a in g)) * norms[i] + 1e-12)
        (want,) = torch.autograd.grad(rec + 1e-2 * total_variation(xi[None])[0], xi)
        assert (got[i] - want).norm() / want.norm() < 1e-5  # float rounding; near-zero pixels differ relatively
        torch.testing.assert_close(got_loss[i], rec.detach(), rtol=1e-5, atol=1e-6)


def test_unfold_and_vmap_reconstruct_the_same_images(model, victims):
    """Same starts, a few unsigned Adam steps: the two paths agree to 1e-4 per pixel (issue #17)."""
    images, labels = victims
    gradients = leak_gradients(model, normalize(images), labels)
    config = dict(iterations=5, sign="none")
    plain = GradientInversion(AttackConfig(mode="batched", **config), box=image_box()).reconstruct(
        model, gradients, labels
    )
    fast = GradientInversion(AttackConfig(mode="unfold", **config), box=image_box()).reconstruct(
        model, gradients, labels
    )
    assert fast.mode == "unfold"
    assert (fast.images - plain.images).abs().max() < 1e-4
    torch.testing.assert_close(fast.gradient_loss, plain.gradient_loss, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 1, 1), (3, 2, 1), (1, 2, 0), (3, 1, 0)])
def test_unfold_is_torch_unfold(kernel, stride, padding):
    conv = torch.nn.Conv2d(4, 5, kernel, stride=stride, padding=padding)
    x = torch.randn(3, 4, 9, 9)
    assert torch.equal(per_sample.unfold(x, conv), F.unfold(x, kernel, padding=padding, stride=stride))


def test_unfold_refuses_layers_it_cannot_split_per_problem():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.PReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    model(torch.zeros(1, 3, 8, 8))
    gradients = leak_gradients(model, torch.zeros(1, 3, 8, 8), torch.tensor([0]))
    attacker = GradientInversion(AttackConfig(mode="unfold", iterations=1), box=image_box())
    with pytest.raises(AutoshieldError, match="unfold"):
        attacker.reconstruct(model, gradients, torch.tensor([0]), image_shape=(3, 8, 8))


def test_results_do_not_depend_on_batch_composition(model, victims):
    images, labels = victims
    gradients = leak_gradients(model, normalize(images), labels)
    attacker = GradientInversion(AttackConfig(iterations=3, batch_size=4), box=image_box())
    together = attacker.reconstruct(model, gradients, labels, seeds=[11, 12, 13, 14])
    alone = attacker.reconstruct(model, tuple(g[2:3] for g in gradients), labels[2:3], seeds=[13])
    assert (together.images[2] - alone.images[0]).abs().mean() < 1e-3


def _attack(model, images, labels):
    """300 iterations on 16x16 crops: the smallest budget at which the recipe converges here (~25 s)."""
    gradients = leak_gradients(model, normalize(images), labels)
    config = AttackConfig(iterations=300, tv_weight=1e-3)
    result = GradientInversion(config, box=image_box()).reconstruct(
        model, gradients, labels, image_shape=tuple(images.shape[1:])
    )
    return denormalize(result.images), result


@pytest.fixture(scope="module")
def smooth_victims():
    images, labels = synthetic_images(1, seed=7, noise=5.0)
    return images[:2, :, :16, :16], labels[:2]


def _assert_recovered(model, smooth_victims) -> None:
    """An attack that fails on undefended images would make every defence look good.

    The bar is relative to what needs no attack at all: the image's own mean colour (a flat
    image, about 15.7 dB and SSIM < 0.2 here). Recovering structure means beating it by 3 dB
    and reaching SSIM 0.5; measured: 20.5-22.9 dB, SSIM 0.66-0.77. The attack's random start
    (no information) must be far below (measured: 9.0-9.3 dB, against 19.1-22.1 dB at norm "none").
    """
    images, labels = smooth_victims
    originals = images.float() / 255
    flat = originals.mean(dim=(2, 3), keepdim=True).expand_as(originals)
    reconstructions, result = _attack(model, images, labels)
    assert not result.failed.any()
    assert (psnr(reconstructions, originals) > psnr(flat, originals) + 3).all()
    assert (ssim(reconstructions, originals) > 0.5).all()
    assert (ssim(flat, originals) < 0.2).all()
    attacker = GradientInversion(AttackConfig(), box=image_box())
    starts = denormalize(attacker.starts(range(len(images)), leak=1, shape=tuple(images.shape[1:])).flatten(0, 1))
    assert (psnr(reconstructions, originals) > psnr(starts, originals) + 8).all()
    # each reconstruction is of its own image, not of the other one
    assert (psnr(reconstructions, originals) > psnr(reconstructions.flip(0), originals) + 5).all()


def test_attack_recovers_undefended_images(model, smooth_victims):
    _assert_recovered(model, smooth_victims)


def test_attack_recovers_undefended_images_on_the_network_dp_sgd_shares(smooth_victims):
    """Issue #14: the profiles' default network is the one DP-SGD and the policies are both measured on; it must be
    invertible too, or DP-SGD's low attack accuracy would be the network's doing."""
    norm = Profile().norm
    assert norm != "batch"  # Opacus cannot train BatchNorm
    _assert_recovered(build_model(width=8, norm=norm, seed=0).eval(), smooth_victims)


def test_strong_transform_lowers_psnr_against_the_original(model, smooth_victims):
    images, labels = smooth_victims
    inverted = apply_op(images, "Invert", 0)
    reconstructions, _ = _attack(model, inverted, labels)
    seen = inverted.float() / 255
    against_transformed = psnr(reconstructions, seen)
    against_original = psnr(reconstructions, images.float() / 255)
    # the attack still recovers what it saw, but that is far from the private image
    assert against_original.mean() < against_transformed.mean() - 8, (against_original, against_transformed)
    assert (ssim(reconstructions, images.float() / 255) < 0.1).all()


def test_bad_inputs(model, victims):
    images, labels = victims
    gradients = leak_gradients(model, normalize(images), labels)
    attacker = GradientInversion(AttackConfig(iterations=1), box=image_box())
    with pytest.raises(AutoshieldError, match="gradient list has"):
        attacker.reconstruct(model, gradients[:-1], labels)
    with pytest.raises(AutoshieldError, match="expected"):
        attacker.reconstruct(build_model(width=16, seed=0), gradients, labels)
    with pytest.raises(AutoshieldError, match="no images"):
        attacker.reconstruct(model, tuple(g[:0] for g in gradients), labels[:0])
    broken = (gradients[0].clone().fill_(float("nan")), *gradients[1:])
    with pytest.raises(AutoshieldError, match="not finite"):
        attacker.reconstruct(model, broken, labels)
    with pytest.raises(AutoshieldError, match="no images"):
        leak_gradients(model, images[:0].float(), labels[:0])


def test_non_finite_reconstruction_is_reported_failed(model, victims):
    images, labels = victims
    gradients = leak_gradients(model, normalize(images), labels)
    exploding = copy.deepcopy(model)  # a network whose outputs overflow: every step of the inversion is non-finite
    with torch.no_grad():
        for parameter in exploding.parameters():
            parameter.mul_(1e30)
    result = GradientInversion(AttackConfig(iterations=2), box=image_box()).reconstruct(exploding, gradients, labels)
    assert result.failed.all()


def test_a_long_attack_says_its_phase(model, victims):
    """Issue #16: a study's bar shows what its worker is doing; the attack reports every 50 iterations."""
    from autoshield.core.runtime import phase, phases

    images, labels = victims
    gradients = leak_gradients(model, normalize(images), labels)
    heard = []
    with phases(heard.append):
        GradientInversion(AttackConfig(iterations=100), box=image_box()).reconstruct(model, gradients, labels)
    assert heard == ["attack iteration 50/100", "attack iteration 100/100"]
    phase("nobody listens")  # outside the block: nothing is called
    assert len(heard) == 2


def test_only_known_convolutions_take_the_unfold_path():
    """A convolution subclass may transform its weight in ways the unfold path cannot know: only the weight-
    standardised one, whose Jacobian it applies (checked against autograd above), is split per problem."""

    class Odd(torch.nn.Conv2d):
        pass

    assert per_sample.supports(build_model(width=4, norm="gnws", seed=0))
    assert per_sample.supports(build_model(width=4, norm="fixup", seed=0))
    model = build_model(width=4, norm="none", seed=0)
    model.conv1 = Odd(3, 4, 3, padding=1, bias=False)
    assert not per_sample.supports(model)
    assert GradientInversion(AttackConfig(), box=image_box()).choose_mode(model, torch.device("cpu")) == "batched"


def test_step_schedule_is_geiping_milestones_and_cosine_warms_up_then_decays():
    step = AttackConfig(iterations=800)
    factors = [lr_factor(step, i) for i in range(800)]
    assert factors[299] == 1 and factors[300] == pytest.approx(0.1) and factors[500] == pytest.approx(0.01)
    assert factors[700] == pytest.approx(0.001)
    modern = AttackConfig(iterations=1000, schedule="cosine", warmup=50)
    assert lr_factor(modern, 0) == pytest.approx(1 / 50) and lr_factor(modern, 49) == pytest.approx(1, abs=1e-2)
    assert lr_factor(modern, 500) == pytest.approx(0.5) and lr_factor(modern, 999) < 1e-4


def test_soft_sign_passes_small_gradients_and_hardens_towards_the_sign():
    g = torch.tensor([-3.0, -1e-3, 0.0, 1e-3, 3.0])
    soft = AttackConfig(iterations=100, sign="soft")
    torch.testing.assert_close(direction(g, soft, 0), torch.tanh(g))
    late = direction(g, soft, 99)  # s = 0.01: tanh(0.01 g) / 0.01
    assert late[0] == pytest.approx(-100 * math.tanh(0.03)) and late[1] == pytest.approx(-1e-3, rel=1e-3)
    assert torch.equal(direction(g, AttackConfig(), 0), g.sign())
    assert torch.equal(direction(g, AttackConfig(sign="none"), 0), g)


def test_warmup_longer_than_the_attack_is_refused():
    with pytest.raises(AutoshieldError, match="warmup"):
        AttackConfig(iterations=10, warmup=11)
