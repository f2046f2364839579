"""The poster's headline, attack side (issue #37 item 5): one label's victims under its cell, against DP-SGD.

The poster reports automobile with Brightness:5 at 44.65 % attack accuracy against DP-SGD σ = 0.5 at 58.0 %. That is
one label's question, so this attacks `--victims` of `--label`'s held-out victims (the pool's first slots of that
label, as `autoshield attack --labels` draws them), from the same starts, three ways: Identity (exact gradients,
the naive attacker), the cell on that label (exact gradients, each attacker of `--attackers`), and DP-SGD's noised
view at each `--dp-sigmas` (`attack --dp-sigma`'s: the seeded untrained network, each victim's gradient clipped
to C = 1 and noised from its own seed, the naive attacker). One judge (`--judge`, an `autoshield judge export`)
scores them all, so their verdicts pair victim by victim (`privacy.paired.compare`): McNemar on recognition,
Wilcoxon on the judge's probability of the true label and on the line-up rank, with Holm over the rows of
`paired.csv` (the family this run declares). The cell is paired under the attacker that recognised most on these
very victims: `worst`'s upper bound, the conservative side for a claim that the cell protects.

Rows go to `<out>/victims.csv` (`attack --csv`'s columns) and `<out>/paired.csv`. The exact-gradient attacks' rows
go to an attack table (`<out>/table.jsonl.gz`, as `autoshield table export` writes it) batch by batch as they are
judged, so a run cut short, on this machine or on another with the same judge, resumes from the committed file
(`--work` holds the table's database meanwhile). A noised view is not cacheable (the cache key cannot see the
noise), so each σ is attacked in one go, last.

python benchmarks/poster_attack.py --out benchmarks/reports/poster-attack-DATE --label automobile \\
    --cell Brightness:5 --victims 25 --dp-sigmas 0.5 --judge studies/leakage/judge.pt
"""

from __future__ import annotations

from pathlib import Path

from common import append_rows, logged, parser, stamp

from autoshield.core.choices import ATTACKERS
from autoshield.core.config import load_profile
from autoshield.core.files import cache_dir
from autoshield.core.interrupts import interruptible
from autoshield.core.runtime import resolve_device
from autoshield.data.cifar import CLASSES, load_cifar10
from autoshield.data.policy import Policy
from autoshield.dp.config import DPConfig
from autoshield.evaluation.attackers import strongest
from autoshield.evaluation.evaluate import attack_with, learned_for, victims
from autoshield.evaluation.judge import AttackResult
from autoshield.evaluation.lineup import pool_lineup
from autoshield.evaluation.reconstruct import settings_digest
from autoshield.privacy.cache import AttackCache
from autoshield.privacy.judge_file import JudgeIdentity, check_fits, read_judge
from autoshield.privacy.paired import compare, holm
from autoshield.privacy.threat import dp_view
from autoshield.report.victims import attack_rows, write_victims
from autoshield.study.attack_table import StudyTable
from autoshield.study.table_file import TableIdentity, export_table, import_table


def paired_rows(runs: dict[str, AttackResult], pairs: list[tuple[str, str]]) -> list[dict[str, object]]:
    """Each (run, baseline) of `pairs` compared on their shared victims, with Holm over all of them."""
    tests = [compare(runs[a].outcomes, runs[b].outcomes) for a, b in pairs]
    adjusted = holm([t.p_mcnemar for t in tests])
    return [
        {
            "run": a,
            "against": b,
            "victims": t.n,
            "recognised": t.cell_recognised,
            "against recognised": t.baseline_recognised,
            "only run / only against": f"{t.only_cell} / {t.only_baseline}",
            "p McNemar": f"{t.p_mcnemar:.3g}",
            "p Holm": f"{p:.3g}",
            "p_true median difference": f"{t.p_true_delta:.3f}",
            "p Wilcoxon p_true": f"{t.p_wilcoxon_true:.3g}",
            "rank median difference": f"{t.rank_delta:g}",
            "p Wilcoxon rank": f"{t.p_wilcoxon_rank:.3g}",
        }
        for (a, b), t, p in zip(pairs, tests, adjusted, strict=True)
    ]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--label", choices=CLASSES, default="automobile")
    p.add_argument("--cell", default="Brightness:5", help="the cell the label's policy applies")
    p.add_argument("--victims", type=int, default=25, help="the label's victims: its first pool slots")
    p.add_argument("--attackers", nargs="+", choices=ATTACKERS, default=list(ATTACKERS))
    p.add_argument("--dp-sigmas", nargs="*", type=float, default=[0.5], help="DP-SGD's noise multipliers (C = 1.0)")
    p.add_argument("--judge", type=Path, required=True, help="an exported judge (`autoshield judge export`)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--work", type=Path, default=Path("studies/poster-attack"), help="the table's database (git-ignored)"
    )
    args = p.parse_args()
    profile = load_profile(args.profile, overrides=(f"images_per_label={args.victims}",))
    device = resolve_device(profile.device)
    data = load_cifar10(args.data_root)
    judge = read_judge(args.judge.read_bytes(), source=str(args.judge))
    check_fits(judge, JudgeIdentity.of(data, profile), source=str(args.judge))
    attacked = victims(data, profile).of_labels([CLASSES.index(args.label)])
    policy = Policy.parse(f"{args.label}={args.cell}")
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    url, saved = f"sqlite:///{args.work / 'table.db'}", args.out / "table.jsonl.gz"
    identity = TableIdentity(data=data.fingerprint, judge=judge.digest, settings=settings_digest(profile))
    if saved.exists():
        print(f"{import_table(url=url, path=saved, identity=identity).new} rows resumed from {saved}")
    common = dict(
        victims=attacked,
        profile=profile,
        reference=judge.model(seed=profile.seed, device=device),
        device=device,
        cache=AttackCache(cache_dir() / "attacks"),
        lineup=pool_lineup(data.train, profile),
        table=StudyTable(url),
        progress=True,
    )
    runs: dict[str, AttackResult] = {}
    try:
        with logged(), interruptible():
            runs["Identity naive"] = attack_with(["naive"], policy=Policy.identity(), **common)["naive"]
            inverse = learned_for(args.attackers, cells=policy.cells, data=data, profile=profile, device=device)
            by_attacker = attack_with(args.attackers, policy=policy, inverse=inverse, **common)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (its subclass Terminated)
        export_table(url=url, path=saved, identity=identity)
        raise SystemExit(f"stopped: every finished batch is in {saved}; rerun the same command to resume") from stop
    export_table(url=url, path=saved, identity=identity)
    runs |= {f"{args.cell} {name}": result for name, result in by_attacker.items()}
    with logged():
        for sigma in args.dp_sigmas:
            view = dp_view(DPConfig(sigma=sigma), indices=attacked.indices, seed=profile.seed)
            dp = attack_with(["naive"], policy=Policy.identity(), threat=view, **{**common, "cache": None})
            runs[f"DP-SGD sigma {sigma:g} naive"] = dp["naive"]
    best = f"{args.cell} {strongest(by_attacker)}"
    dps = [name for name in runs if name.startswith("DP-SGD")]
    pairs = [(best, "Identity naive"), *((best, d) for d in dps), *((d, "Identity naive") for d in dps)]
    rows = [
        row
        for name, result in runs.items()
        for row in attack_rows(
            result,
            profile=profile,
            source=name.rsplit(" ", 1)[0],
            policy=policy if name.startswith(args.cell) else Policy.identity(),
            attacker=name.rsplit(" ", 1)[1],
            setting="noised" if name.startswith("DP-SGD") else "",
        )
    ]
    write_victims(rows, args.out / "victims.csv")
    (args.out / "paired.csv").unlink(missing_ok=True)
    head = {"label": args.label, "judge": judge.digest[:12], "profile": profile.fingerprint(), **stamp()}
    table = [{**head, **row} for row in paired_rows(runs, pairs)]
    append_rows(args.out / "paired.csv", table)
    for name, result in runs.items():
        print(f"{name:<28} {sum(result.outcomes.recognised)}/{len(attacked)} recognised, {result.seconds:.0f} s")
    for row in table:
        print(
            f"{row['run']} against {row['against']}: {row['only run / only against']} discordant, "
            f"McNemar p = {row['p McNemar']} (Holm {row['p Holm']})"
        )


if __name__ == "__main__":
    main()
