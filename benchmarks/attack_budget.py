"""How strong is the attack at each budget and recipe (issues #13 and #33), and how much does membership inflate it?

Identity on the profile's held-out victims (pool slots [0, images_per_label)), one row per attack setting: attack
accuracy with its 95 % interval, the chance floor, PSNR, how many victims the reconstruction singles out of the
held-out pool (identifiability, which needs no judge), failures and the cost per victim. Every setting runs on
the same victims from the same starts, so each is compared with the best one by an exact McNemar test on the
paired verdicts. `--members` judges the same reconstructions a second time with a judge that did train on the
victims (the earlier versions' judge) and tests the difference the same way: the membership effect. The last
line applies issue #33's rule to the table: the cheapest setting within 3 points of the best.

With `--out`, rows go to `<out>/budget.csv` and every victim's verdict to `<out>/victims.csv` as each setting
ends; a rerun skips the settings (and pool slots) they hold, so a long table resumes on another machine from the
committed CSVs. `--slots 2:4` attacks only pool slots 2 and 3 of the profile's victims: a setting too long for one
session (4 restarts at 6,000 iterations is ~4 h on 2 cores) is split into chunks, one budget.csv row each. A
victim's start depends only on its training index and the seed, so a chunk's victims end as in a whole run (on
machines of one rounding class: RESULTS.md, 2026-12-03).
Attacks also land in the attack cache, so `--no-judge` computes them before any judge exists (e.g. beside the
judge's training) and a later run judges them in seconds.

python benchmarks/attack_budget.py --out benchmarks/reports/budget-2026-12-03 \\
    --settings attack.iterations=1500 attack.iterations=3000 \\
    'attack.iterations=3000,attack.sign="soft",attack.schedule="cosine",attack.warmup=50'
python benchmarks/attack_budget.py --out benchmarks/reports/restarts-6000 --set images_per_label=5 --slots 0:2 \\
    --settings attack.iterations=6000,attack.restarts=4
python benchmarks/attack_budget.py --members --settings attack.iterations=300 attack.iterations=1000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import append_rows, logged, machine, parser, read_rows, stamp, victim_rows

from autoshield.core.config import load_profile
from autoshield.core.files import cache_dir
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import load_cifar10
from autoshield.data.policy import Policy
from autoshield.data.victims import victim_pool
from autoshield.evaluation.judge import judge_reconstructions
from autoshield.evaluation.lineup import pool_lineup
from autoshield.evaluation.reconstruct import reconstruct_policy
from autoshield.privacy.cache import AttackCache, model_digest
from autoshield.privacy.paired import mcnemar_exact
from autoshield.privacy.reference import reference_classifier
from autoshield.report.format import interval


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--profile", default="quick")
    p.add_argument(
        "--settings",
        nargs="+",
        default=["attack.iterations=300"],
        help="one attack setting per word: comma-separated profile overrides, e.g. "
        "attack.iterations=600,attack.tv_weight=1e-3",
    )
    p.add_argument("--set", nargs="*", default=[], help="overrides every setting shares, e.g. attack.batch_size=200")
    p.add_argument("--no-judge", action="store_true", help="only compute (and cache) the reconstructions")
    p.add_argument("--members", action="store_true", help="also judge with a judge that trained on the victims")
    p.add_argument("--out", type=Path, help="folder of budget.csv and victims.csv, resumed from what they hold")
    p.add_argument(
        "--reference",
        help="a setting (as named in --settings) every other one is held to issue #35's non-inferiority margins "
        "against: recognition and identifiability within 3 points, PSNR within 0.5 dB, on the same victims",
    )
    p.add_argument(
        "--slots",
        type=slots,
        help="attack only pool slots START:STOP of the profile's victims (default: all of them), e.g. 0:2",
    )
    args = p.parse_args()
    shared = load_profile(args.profile, overrides=tuple(args.set))
    wanted = range(*(args.slots or (0, shared.images_per_label)))
    if not wanted or not 0 <= wanted.start < wanted.stop <= shared.images_per_label:
        p.error(f"--slots {wanted.start}:{wanted.stop} is not within the profile's {shared.images_per_label} victims")
    device = resolve_device("auto")
    data = load_cifar10(args.data_root)
    cache = AttackCache(cache_dir() / "attacks")
    held = read_rows(args.out / "victims.csv") if args.out else []
    done = {(r["fingerprint"], int(r["slot"])) for r in held}  # by what the setting is, not by what it is called
    print(f"machine: {machine()}; profile {args.profile}; {len(held)} victims already in {args.out}", flush=True)
    judges = {}
    lineup = pool_lineup(data.train, shared)
    for setting in args.settings:
        profile = load_profile(args.profile, overrides=(*args.set, *setting.split(",")))
        todo = [slot for slot in wanted if (profile.fingerprint(), slot) not in done]
        if not todo:
            continue
        first, stop = todo[0], todo[-1] + 1
        if len(todo) != stop - first:
            p.error(f"{setting}: slots {todo} are missing from {args.out} but not in one range; give --slots")
        attacked = victim_pool(profile).draw(data.train, start=first, count=stop - first)
        start = time.perf_counter()
        found = reconstruct_policy(
            policy=Policy.identity(), victims=attacked, profile=profile, device=device, cache=cache, progress=True
        )
        wall = time.perf_counter() - start
        work = (len(attacked) - found.cached) * profile.attack.iterations
        cost = f"{1000 * found.seconds / work:.1f} ms per image-iteration" if work else "all from the cache"
        print(f"{setting}: {len(attacked)} victims, {found.cached} cached, {wall:.0f} s wall, {cost}", flush=True)
        if args.no_judge:
            continue
        verdicts = {}
        for members in (False, True) if args.members else (False,):
            if members not in judges:
                judges[members] = reference_classifier(data, profile, device=device, members=members, progress=True)
                print(
                    f"judge (trained on the victims: {members}): {judges[members].accuracy.overall:.1%} clean, "
                    f"digest {model_digest(judges[members].model)}"
                )
            result = judge_reconstructions(
                found, profile=profile, reference=judges[members].model, device=device, lineup=lineup
            )
            stats = result.overall
            assert stats.identified is not None  # a line-up was given
            verdicts[members] = torch.tensor(result.outcomes.recognised, dtype=torch.bool)
            print(
                f"  judge saw victims {members!s:5}: attack {interval(stats.attack_accuracy)} % "
                f"({int(verdicts[members].sum())}/{len(attacked)}), floor {stats.chance_floor.mean:.1%}, "
                f"PSNR {stats.psnr_original.mean:.1f} dB, SSIM {stats.ssim_original.mean:.3f}, failed {stats.failed}; "
                f"identified {round(stats.identified.mean * len(attacked))}/{len(attacked)} among {stats.lineup}, "
                f"median rank {stats.median_rank:.0f}",
                flush=True,
            )
            if args.out and not members:
                head = {"setting": setting, "fingerprint": profile.fingerprint()}
                rows = victim_rows(result.outcomes, **head)
                for row, kept in zip(rows, found.restart.tolist(), strict=True):
                    row["restart"] = kept  # which start won: do restarts help, victim by victim
                append_rows(args.out / "victims.csv", rows)
                append_rows(
                    args.out / "budget.csv",
                    [
                        {
                            **head,
                            "slots": f"{first}:{stop}",
                            "iterations": profile.attack.iterations,
                            "restarts": profile.attack.restarts,
                            "victims": len(attacked),
                            "recognised": int(verdicts[members].sum()),
                            "psnr": f"{stats.psnr_original.mean:.2f}",
                            "identified": round(stats.identified.mean * len(attacked)),
                            "median_rank": f"{stats.median_rank:g}",
                            "lineup": stats.lineup,
                            "failed": stats.failed,
                            "seconds_per_victim": f"{found.seconds / max(1, len(attacked) - found.cached):.1f}",
                            "cached": found.cached,
                            "judge": model_digest(judges[members].model),
                            **stamp(),
                        }
                    ],
                )
        if len(verdicts) == 2:
            only_members = int((verdicts[True] & ~verdicts[False]).sum())
            only_heldout = int((verdicts[False] & ~verdicts[True]).sum())
            p_value = mcnemar_exact(only_members, only_heldout)
            print(
                f"  membership: recognised only by the judge that saw them {only_members}, only by the held-out "
                f"judge {only_heldout}, exact McNemar p = {p_value:.3g}",
                flush=True,
            )
    rows = read_rows(args.out / "victims.csv") if args.out else []
    if rows:
        paired_against_best(rows)
        print(rule_choice(rows, budget=read_rows(args.out / "budget.csv")))
        if args.reference:
            for line in non_inferiority(rows, budget=read_rows(args.out / "budget.csv"), reference=args.reference):
                print(line, flush=True)


def slots(text: str) -> tuple[int, int]:
    """An argparse type: pool slots START:STOP, a half-open range as in Python."""
    start, _, stop = text.partition(":")
    try:
        return int(start), int(stop)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP, e.g. 0:2, got {text!r}") from None


def rule_choice(rows: list[dict[str, str]], *, budget: list[dict[str, str]], points: float = 3) -> str:
    """Issue #33's rule, applied rather than read off by eye: among the settings that attacked every victim of the
    table (a setting still in chunks waits), the cheapest whose recognition is within `points` of the best. Cost is
    the iterations x restarts a victim costs, as budget.csv stored them: a preset that changed since (quick's
    restarts did) neither renames nor reprices a row."""
    by_setting = verdicts_by_setting(rows, lambda row: int(row["recognised"]))
    every = set().union(*(v.keys() for v in by_setting.values()))
    compared = [s for s, v in by_setting.items() if v.keys() == every]
    if not compared:
        return f"rule: no setting has attacked all {len(every)} victims yet"
    rate = {s: sum(by_setting[s].values()) / len(every) for s in compared}
    best = max(compared, key=rate.__getitem__)
    cost = {row["fingerprint"]: int(row["iterations"]) * int(row["restarts"]) for row in budget}
    near = [s for s in compared if 100 * (rate[best] - rate[s]) <= points + 1e-9]
    choice = min(near, key=lambda s: (cost[s], -rate[s]))
    name = {row["fingerprint"]: row["setting"] for row in rows}
    return (
        f"rule: best {name[best]} ({100 * rate[best]:.1f} %); cheapest within {points:g} points of it among the "
        f"{len(compared)} settings on all {len(every)} victims: {name[choice]} ({100 * rate[choice]:.1f} %, "
        f"{cost[choice]:,} image-iterations per victim)"
    )


def verdicts_by_setting(rows: list[dict[str, str]], hit: Callable[[dict[str, str]], int]) -> dict[str, dict[str, int]]:
    """victims.csv's rows as {fingerprint: {victim index: hit}}: what the pairings and the rule read. Keyed by the
    profile's fingerprint, since one name (`attack.iterations=3000`) meant another setting once a preset changed."""
    by_setting: dict[str, dict[str, int]] = {}
    for row in rows:
        by_setting.setdefault(row["fingerprint"], {})[row["index"]] = hit(row)
    return by_setting


def non_inferiority(
    rows: list[dict[str, str]], *, budget: list[dict[str, str]], reference: str, victims: int = 50
) -> list[str]:
    """Issue #35's check of a cheaper attack against `reference`, paired on the victims both attacked from the same
    starts: recognition and identifiability (rank 1 in the line-up) within 3 points, PSNR within 0.5 dB, each a
    difference of means, not an interval (50 victims cannot bound a 3-point difference). It passes only on
    `victims` or more shared victims, and says what each setting cost per victim as budget.csv timed it."""
    name = {row["fingerprint"]: row["setting"] for row in rows}
    wanted = [f for f, n in name.items() if n == reference]
    if not wanted:
        return [f"non-inferiority: no victims of the reference {reference!r} yet"]
    base = {row["index"]: row for row in rows if row["fingerprint"] == wanted[0]}
    cost: dict[str, list[float]] = {}
    for row in budget:
        cost.setdefault(row["fingerprint"], []).extend([float(row["seconds_per_victim"])] * int(row["victims"]))
    lines = []
    for fingerprint in (f for f in name if f != wanted[0]):
        pairs = [(base[r["index"]], r) for r in rows if r["fingerprint"] == fingerprint and r["index"] in base]
        if not pairs:
            continue

        def delta(value: Callable[[dict[str, str]], float], pairs: list = pairs) -> float:
            return statistics.fmean(value(new) - value(old) for old, new in pairs)

        recognised = 100 * delta(lambda r: int(r["recognised"]))
        identified = 100 * delta(lambda r: int(r["rank"] == "1"))
        psnr = delta(lambda r: float(r["psnr"]))
        within = recognised >= -3 and identified >= -3 and psnr >= -0.5
        verdict = ("passes" if within else "fails") if len(pairs) >= victims else f"waits for {victims} victims"
        seconds = {f: statistics.fmean(cost[f]) for f in (wanted[0], fingerprint) if cost.get(f)}
        speed = (
            f"; {seconds[fingerprint]:.1f} s per victim against {seconds[wanted[0]]:.1f} s" if len(seconds) == 2 else ""
        )
        lines.append(
            f"non-inferiority of {name[fingerprint]} to {reference} on {len(pairs)} victims: recognition "
            f"{recognised:+.1f} points, identifiability {identified:+.1f} points, PSNR {psnr:+.2f} dB: {verdict}{speed}"
        )
    return lines


def paired_against_best(rows: list[dict[str, str]]) -> None:
    """Each setting against the best one on the victims both attacked: exact McNemar on the discordant pairs, for
    the judge's verdict (recognised) and, where ranks were kept, the judge-free one (singled out of the line-up).
    A setting with fewer hits is worse only where p is small; within noise it is as good."""
    endpoints = {"recognised": lambda row: int(row["recognised"])}
    if all(row.get("rank") for row in rows):
        endpoints["identified"] = lambda row: int(row["rank"] == "1")
    for endpoint, hit in endpoints.items():
        by_setting = verdicts_by_setting(rows, hit)
        name = {row["fingerprint"]: row["setting"] for row in rows}
        best = max(by_setting, key=lambda s: sum(by_setting[s].values()) / len(by_setting[s]))
        for setting, verdicts in by_setting.items():
            shared = sorted(set(verdicts) & set(by_setting[best]))
            only_best = sum(by_setting[best][i] and not verdicts[i] for i in shared)
            only_this = sum(verdicts[i] and not by_setting[best][i] for i in shared)
            print(
                f"{endpoint}: {name[setting]}: {sum(verdicts[i] for i in shared)}/{len(shared)} against the best's "
                f"{sum(by_setting[best][i] for i in shared)}; discordant {only_best} / {only_this}, exact McNemar "
                f"p = {mcnemar_exact(only_best, only_this):.3g}",
                flush=True,
            )


if __name__ == "__main__":
    with logged():
        main()
