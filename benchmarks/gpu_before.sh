#!/bin/bash
# Exports the code before issue #17 (default: 90e0993, main before the change) into the git-ignored .gpu/before, so
# that benchmarks/gpu.sh measures before and after on the same card in one run. From the project root, after
# `bash ../shared/gpu/pack.sh`:  bash benchmarks/gpu_before.sh [COMMIT]
set -eu
rm -rf .gpu/before && mkdir -p .gpu/before
git archive "${1:-90e0993}" autoshield | tar -x -C .gpu/before
git rev-parse --short "${1:-90e0993}" > .gpu/before.commit
git rev-parse --short HEAD > .gpu/main.commit
