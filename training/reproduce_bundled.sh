#!/usr/bin/env bash
# Regenerate the data, retrain and export the bundled model (bair_world/checkpoints/default/).
#
#     bash training/reproduce_bundled.sh            # from the repository root, after `pip install -e .`
#
# Steps: (1) write the synthetic pushing-world dataset in the BAIR folder layout (the same sequences
# as the cached default dataset train.py uses: same generator version, seed and split sizes);
# (2) stage 1: train the `bundled_base` preset (2 -> 10 horizon, 2500 steps); (3) stage 2: fine-tune
# it with the `bundled` preset (training/presets.py: horizon 10 -> 28, teacher forcing 0.5 -> 0,
# pixel-motion output), selected on the validation split's 2 -> 28 PSNR; (4) evaluate the best
# checkpoint on the test split (2 -> 28 and the seed's 2 -> 10, regions, copy-last baseline);
# (5) export it into the package (float16 if needed to stay small; checked against the source).
# Environment overrides: DATA (dataset root), THREADS (torch threads).
#
# Step (3b), stage 3 (release 3, the shipped model since 2026-12-02): the `bundled_push` preset on top of
# stage 2 (spatial cond, context mask, change weight 2), made as
#     python training/train.py --preset bundled_push --init-from <release 2> --threads 1 --amp bf16 \
#         --max-minutes 85 --val-sequences 32 --change-weight 2 --name r3-cw2      (best: step 1080)
#     python training/bundle.py runs/r3-cw2
# Release 2 (stage 2, 2026-12-01) was made on a 2-core AMD EPYC CPU shared with other jobs:
# stage 1 is release 1's model (2026-11-25: `--preset bundled_base`, 86 min, best checkpoint step
# 2400); stage 2 started from it (as stored in the package, float16 weights) with
#     python training/train.py --preset bundled --init-from bair_world/checkpoints/default \
#         --name abl-horizon-motion --threads 1 --max-minutes 62
#     python training/train.py --resume runs/abl-horizon-motion --max-minutes 30
#     python training/bundle.py runs/abl-horizon-motion
# (the run and its ablation siblings: docs/benchmarks.md, "What makes long rollouts hold").
# Each `--max-minutes` stop is resumable: rerunning this script continues interrupted stages.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${DATA:-data/synth}"
THREADS="${THREADS:-1}"

bair-world data synth --out "$DATA" --seed 0
stage() {  # stage NAME PRESET [options...]: train, or continue an interrupted run
    local name="$1" preset="$2"
    shift 2
    if [ -f "runs/$name/train_config.json" ]; then
        python training/train.py --resume "runs/$name"
    else
        python training/train.py --preset "$preset" --data-root "$DATA" --name "$name" --threads "$THREADS" "$@"
    fi
}
stage bundled-base bundled_base
stage bundled bundled --init-from runs/bundled-base/best
stage bundled-push bundled_push --init-from runs/bundled/best --amp bf16 --val-sequences 32 --max-minutes 85
python training/evaluate.py --checkpoint runs/bundled-push/best --data-root "$DATA" --split test --seed 0
python training/bundle.py runs/bundled-push
bair-world demo
