from __future__ import annotations

import hashlib

import pytest
import torch

from autoshield.core.choices import NORMS
from autoshield.core.config import load_profile
from autoshield.data.policy import Policy
from autoshield.evaluation.evaluate import attack_policy, evaluate_policy, profile_splits, victims
from autoshield.evaluation.reconstruct import reconstruct_policy
from autoshield.learn.models import build_model
from autoshield.learn.train import evaluate
from autoshield.privacy.cache import AttackCache, model_digest
from autoshield.privacy.metrics import mean_interval, proportion
from autoshield.privacy.reference import reference_classifier

CPU = torch.device("cpu")


def test_intervals():
    estimate = proportion(torch.tensor([True, True, False, True]))
    assert estimate.mean == 0.75 and 0.2 < estimate.low < 0.75 < estimate.high <= 1
    spread = mean_interval(torch.tensor([10.0, 12.0, 14.0]))
    assert spread.mean == 12.0 and spread.low < 12 < spread.high
    assert proportion(torch.tensor([], dtype=torch.bool)).n == 0


def test_reference_classifier_is_trained_once_and_cached(data, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOSHIELD_CACHE", str(tmp_path))  # other tests may have trained it already
    profile = load_profile("smoke")
    first = reference_classifier(data, profile, device=CPU)
    second = reference_classifier(data, profile, device=CPU)
    assert first.trained_now and not second.trained_now
    assert first.accuracy == second.accuracy
    assert first.accuracy.overall > 0.5  # synthetic labels are easy; chance is 0.1
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_attack_policy_end_to_end_with_cache(data, tmp_path):
    profile = load_profile("smoke", overrides=("attack.iterations=60",))
    reference = reference_classifier(data, profile, device=CPU).model
    cache = AttackCache(tmp_path / "attacks")
    kwargs = dict(victims=victims(data, profile), profile=profile, reference=reference, device=CPU, cache=cache)
    plain = attack_policy(policy=Policy.identity(), **kwargs)
    assert plain.cached == 0 and plain.seconds > 0 and len(plain.per_label) == 10
    assert plain.overall.failed == 0 and plain.overall.attack_accuracy.n == 10
    assert plain.overall.label_recovery.mean == 1.0
    assert plain.overall.recognisability.mean > 0.5  # the reference classifier knows clean images
    assert plain.overall.psnr_original == plain.overall.psnr_transformed  # Identity: x' = x
    again = attack_policy(policy=Policy.identity(), **kwargs)
    assert again.cached == 10 and again.seconds == 0 and again.overall == plain.overall
    defended = attack_policy(policy=Policy.parse("Invert"), **kwargs)
    assert defended.cached == 0
    assert defended.overall.psnr_original.mean < defended.overall.psnr_transformed.mean - 1


def test_the_kept_start_is_recorded_and_cached(data, tmp_path):
    """Which of the restarts each victim kept travels with its reconstruction, from the cache too (-1 for an entry
    cached before it was stored): whether restarts help is then read per victim, not guessed from equal PSNRs."""
    profile = load_profile("smoke", overrides=("attack.iterations=5", "attack.restarts=3"))
    cache = AttackCache(tmp_path)
    kwargs = dict(policy=Policy.identity(), victims=victims(data, profile), profile=profile, device=CPU, cache=cache)
    fresh = reconstruct_policy(**kwargs)
    assert fresh.cached == 0 and set(fresh.restart.tolist()) <= {0, 1, 2}
    assert torch.equal(reconstruct_policy(**kwargs).restart, fresh.restart)
    for path in tmp_path.rglob("*.pt"):  # as an older version stored them
        entry = cache.get(path.stem)
        cache.put(path.stem, {k: v for k, v in entry.items() if k != "restart"})
    older = reconstruct_policy(**kwargs)
    assert older.cached == 10 and older.restart.tolist() == [-1] * 10


def test_an_interrupted_attack_keeps_its_finished_batches_and_resumes_with_the_same_results(
    data, tmp_path, monkeypatch
):
    """`autoshield attack` stopped in its third batch of 4 problems keeps the first two: a rerun attacks only the
    rest, and ends where an uninterrupted attack ends (the batches are the attack's own)."""
    from autoshield.evaluation import reconstruct

    profile = load_profile("smoke", overrides=("attack.iterations=5", "attack.batch_size=4"))
    kwargs = dict(policy=Policy.parse("Rotate:9"), victims=victims(data, profile), profile=profile, device=CPU)
    whole = reconstruct_policy(**kwargs)  # no cache: one call, which solves its problems 4 at a time itself
    real, calls = reconstruct.attack_entries, []

    def stopped_in_the_third(*args, **kw):
        calls.append(len(kw["seeds"]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(reconstruct, "attack_entries", stopped_in_the_third)
    cache = AttackCache(tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        reconstruct_policy(**kwargs, cache=cache)
    assert calls == [4, 4, 2] and len(list((tmp_path / "cut").rglob("*.pt"))) == 8
    monkeypatch.setattr(reconstruct, "attack_entries", real)
    resumed = reconstruct_policy(**kwargs, cache=cache)
    assert resumed.cached == 8 and torch.equal(resumed.images, whole.images)


def test_recognizability_utility_is_the_reference_accuracy_on_the_transformed_test_subset(data, tmp_path):
    """Measured on every test image of the profile, not on the one attacked image per label."""
    profile = load_profile("smoke", overrides=("attack.iterations=2",))
    reference = reference_classifier(data, profile, device=CPU).model
    kwargs = dict(data=data, profile=profile, reference=reference, device=CPU, utility="recognizability")
    plain = evaluate_policy(policy=Policy.identity(), cache=AttackCache(tmp_path), **kwargs)
    _, test = profile_splits(data, profile)
    clean = evaluate(reference, test, batch_size=100, device=CPU)
    assert plain.model_accuracy == clean.overall and plain.model_accuracy_per_label == clean.per_label
    assert plain.train_seconds == 0
    assert len(test) > len(plain.attack.labels)
    inverted = evaluate_policy(policy=Policy.parse("Invert"), cache=AttackCache(tmp_path), **kwargs)
    assert inverted.model_accuracy < clean.overall  # the reference never saw inverted images


def test_attack_cache_keys_tell_every_network_apart():
    """`group` and `layer` share every weight at initialisation; a key from the weights alone would hand one
    network's reconstructions to the other. BatchNorm's key is that of its weights and buffers, as before."""
    digests = {norm: model_digest(build_model(width=8, norm=norm, seed=0)) for norm in NORMS}
    assert len(set(digests.values())) == len(NORMS)
    assert digests["batch"] == _weights_only_digest(build_model(width=8, norm="batch", seed=0))
    assert model_digest(build_model(width=8, norm="none", seed=0)) == digests["none"]  # deterministic


def _weights_only_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def test_attack_cache_reads_entries_written_before_checksums(tmp_path):
    """Issue #18: entries of an older autoshield (plain torch.save, no checksum line) are read, not recomputed."""
    key = "ab" * 32
    (tmp_path / "ab").mkdir()
    torch.save({"x": torch.arange(3)}, tmp_path / "ab" / f"{key}.pt")
    assert torch.equal(AttackCache(tmp_path).get(key)["x"], torch.arange(3))
    AttackCache(tmp_path).put(key, {"x": torch.arange(4)})
    assert (tmp_path / "ab" / f"{key}.pt").read_bytes().startswith(b"autoshield-sha256:")
    assert torch.equal(AttackCache(tmp_path).get(key)["x"], torch.arange(4))


def test_attack_cache_holds_says_what_is_stored_and_get_still_refuses_a_damaged_entry(tmp_path):
    """`holds` answers without reading (a build asks it of thousands of keys); a damaged entry it reports is then
    moved aside by `get`, and recomputed by the caller."""
    cache, key = AttackCache(tmp_path), "ef" * 32
    assert not cache.holds(key)
    cache.put(key, {"x": torch.arange(2)})
    assert cache.holds(key)
    path = tmp_path / "ef" / f"{key}.pt"
    path.write_bytes(path.read_bytes()[:-5])
    assert cache.holds(key) and cache.get(key) is None
    assert not cache.holds(key)


def test_attack_cache_stores_a_slice_without_its_batch(tmp_path):
    """A victim's slice of a batch is stored as the slice alone: a view would carry the whole batch's storage (an
    H200 run's 100 entries took 60 MB before, 1.5 MB after)."""
    batch = torch.randn(200, 3, 32, 32)
    AttackCache(tmp_path).put("cd" * 32, {"reconstruction": batch[7:8]})
    assert (tmp_path / "cd" / f"{'cd' * 32}.pt").stat().st_size < 3 * 32 * 32 * 4 + 2_000
    assert torch.equal(AttackCache(tmp_path).get("cd" * 32)["reconstruction"], batch[7:8])
