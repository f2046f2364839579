"""Pack a profile's held-out victim pool for a GPU machine: a CIFAR-10 folder in which the pool's images are exact
(lossless PNG of the pixels this machine decoded) and every other image is one shared blank.

Why: an attack needs only its victims, the pool's draw needs only the labels, and a victim's start only its
training index, so this pack attacks the same victims from the same starts as the whole tree and fills the attack
cache under the same keys (they hash the victim's pixels, never the rest of the data). It is 3 MB where the
JPEG tree is 53 MB, which does not fit the device's 64 MiB beside the repository. The attacks come back as a
cache and are judged here (`attack_budget.py` finds them all cached). Not for training or judging: every image
outside the pool is blank.

The pack is a `{relative path: bytes}` pickle, the format of `../shared/gpu/cifar_pack.py`:
    python benchmarks/victim_pack.py --profile quick --out .gpu/victims.pkl        (here)
    python benchmarks/victim_pack.py --unpack .gpu/victims.pkl --into "$TMP/victims"   (there)
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from common import parser
from torchvision.io import encode_png

from autoshield.core.config import load_profile
from autoshield.data.cifar import CLASSES, Split, load_cifar10
from autoshield.data.victims import victim_pool


def pack_split(split: Split, *, name: str, keep: set[int]) -> dict[str, bytes]:
    """`name/<label>/<position within the label>.png` for every image, in the order the folder reader sorts them
    back into: the images at positions `keep` as they are, the rest as one blank (pickled once, shared)."""
    blank = encode_png(torch.zeros_like(split.images[0])).numpy().tobytes()
    files = {}
    for label, folder in enumerate(CLASSES):
        members = torch.nonzero(split.labels == label).flatten().tolist()
        for rank, position in enumerate(members):
            image = encode_png(split.images[position]).numpy().tobytes() if position in keep else blank
            files[f"{name}/{folder}/{rank:05d}.png"] = image
    return files


def unpack(pack: Path, into: Path) -> None:
    """Write the pack's files under `into`."""
    with pack.open("rb") as f:
        files = pickle.load(f)
    for relative, blob in files.items():
        path = into / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    print(f"{len(files)} files -> {into}", flush=True)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--profile", default="quick")
    p.add_argument("--set", nargs="*", default=[], help="profile overrides, e.g. victim_pool_per_label=100")
    p.add_argument(
        "--out",
        type=Path,
        help="the pickle to write, e.g. .gpu/victims.pkl; without it only the "
        "pool's digest is printed, to compare the data on two machines",
    )
    p.add_argument("--unpack", type=Path, help="a pack to unpack --into a folder, instead of packing")
    p.add_argument("--into", type=Path, help="where --unpack writes the folder")
    args = p.parse_args()
    if args.unpack:
        if args.into is None:
            p.error("--unpack needs --into")
        unpack(args.unpack, args.into)
        return
    profile = load_profile(args.profile, overrides=tuple(args.set))
    data = load_cifar10(args.data_root)
    pool = victim_pool(profile).slots(data.train).flatten().tolist()
    digest = hashlib.sha256(data.train.images[pool].contiguous().numpy().tobytes()).hexdigest()[:16]
    print(f"pool of {len(pool)} images ({args.profile}), pixels {digest}", flush=True)
    if args.out is None:
        return
    files = {**pack_split(data.train, name="train", keep=set(pool)), **pack_split(data.test, name="test", keep=set())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("wb") as f:
        pickle.dump(files, f, protocol=5)
    print(f"{len(files)} files -> {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
