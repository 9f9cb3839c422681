#!/usr/bin/env bash
# The packaged default model, from the four public git sources to the committed folder and its card, in one
# command (about 31 CPU hours of updates on a 2-core x86-64 CPU, both cores, bfloat16 where the CPU has it):
#
#   SOURCES=/path/to/sources bash scripts/make_default_model.sh
#
# SOURCES holds the four repositories of docs/training.md, each a clone or a bare git directory, named
# speechocean762, Resemblyzer, noise_dataset and Noises (git clone https://github.com/jimbozhang/speechocean762
# and so on). The steps, each skipped when its output exists and resumed from its last checkpoint when it was
# cut off (so the command is simply run again after an interruption):
#
# 0. the corpus (scripts/build_corpus.py --git-sources ... --train-noise packages babble -> data/corpus-git-noise);
# 1. the full width alone from scratch with L_Cmp, FULL_WIDTH_STEPS (400) at 1e-3, then FURTHER_STEPS (1730)
#    from 3e-4 (both cosine);
# 2. stage 1, every width, with per-width output gains, the suppression loss, in-place distillation from the full
#    width and the slimmed bottleneck (STAGE1_STEPS, 400);
# 3. stage 1 with L_PESQ at weight 0.1 (PESQ_STEPS, 160);
# 4. stage 2, the router at target 0.25 with stage 1's terms beside it (STAGE2_STEPS, 380), then its calibration,
#    and STAGE2_TAIL_STEPS (60) more of it from half the rate with L_Sup at 0.3 instead of 1 (less noise kept),
#    then STAGE2_LONG_STEPS (360) more from the same rate with L_Sup at 0.1;
# 5. scripts/evaluate.py on TEST_ITEMS (120) clips of the test split (held-out speakers and noise categories):
#    every width, routed, the noisy input, RNNoise and DeepFilterNet3 (--processes 2: two workers share the clips);
# 6. scripts/compare_models.py and scripts/package_default_model.py: the model and its card to DESTINATION
#    (adaslim_hf/pretrained/adaslim-demucs), the comparison to RESULTS_DIR (docs/results/default-model).
#
# What this is: the recipe of the packaged weights in the order and with the settings their runs converged to,
# each stage in one run. The packaged weights themselves came from nineteen runs (to run I) whose settings changed on the
# way (docs/results/default-model/how-these-weights-were-made.md lists them); this consolidation has not been run
# end to end at full scale (about 31 CPU hours), only at smoke scale (tests/test_recipe.py, opt-in):
#
#   SOURCES=... RUNS=/tmp/mdm FULL_WIDTH_STEPS=1 FURTHER_STEPS=1 STAGE1_STEPS=1 PESQ_STEPS=1 STAGE2_STEPS=1 \
#   STAGE2_TAIL_STEPS=1 STAGE2_LONG_STEPS=1 TEST_ITEMS=2 DESTINATION=/tmp/mdm/pretrained RESULTS_DIR=/tmp/mdm/results PROCESSES=1 \
#   TRAIN_ARGS="--max_valid_items 2 --calibrate_router 2 --gradient_accumulation_steps 1 --train_batch_size 2" \
#   PACKAGE_ARGS=--allow_inverted bash scripts/make_default_model.sh
#
# More settings (environment): CORPUS (data/corpus-git-noise), RUNS (runs/default), PROCESSES (2: one training
# process per core through `accelerate launch`, 1: one process; the batch is 64 segments of 4 s either way),
# TRAIN_ARGS (more scripts/train.py flags for every run, last so they win), PACKAGE_ARGS (more
# scripts/package_default_model.py flags). After packaging into the repository, record the pinned outputs again:
# delete tests/fixtures/packaged_outputs.json and run `ADASLIM_RECORD_PINNED=1 python -m pytest -k pinned`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SOURCES=${SOURCES:-sources}
CORPUS=${CORPUS:-data/corpus-git-noise}
RUNS=${RUNS:-runs/default}
FULL_WIDTH_STEPS=${FULL_WIDTH_STEPS:-400}
FURTHER_STEPS=${FURTHER_STEPS:-1730}
STAGE1_STEPS=${STAGE1_STEPS:-400}
PESQ_STEPS=${PESQ_STEPS:-160}
STAGE2_STEPS=${STAGE2_STEPS:-380}
STAGE2_TAIL_STEPS=${STAGE2_TAIL_STEPS:-60}
STAGE2_LONG_STEPS=${STAGE2_LONG_STEPS:-360}
TEST_ITEMS=${TEST_ITEMS:-120}
PROCESSES=${PROCESSES:-2}
DESTINATION=${DESTINATION:-adaslim_hf/pretrained}
RESULTS_DIR=${RESULTS_DIR:-docs/results/default-model}
read -r -a TRAIN_ARGS <<< "${TRAIN_ARGS:-}"
read -r -a PACKAGE_ARGS <<< "${PACKAGE_ARGS:-}"
export OMP_NUM_THREADS=1

if [ ! -f "$CORPUS/corpus.json" ]; then
  for name in speechocean762 Resemblyzer noise_dataset Noises; do
    [ -e "$SOURCES/$name" ] || { echo "make_default_model.sh: expected the git source $SOURCES/$name (a clone or a bare git directory; SOURCES names their folder, docs/training.md)" >&2; exit 2; }
  done
  $PY scripts/build_corpus.py --output "$CORPUS" --git-sources speechocean762="$SOURCES/speechocean762" \
      resemblyzer="$SOURCES/Resemblyzer" noise_dataset="$SOURCES/noise_dataset" noises="$SOURCES/Noises" \
      --train-noise packages babble --workers 2
fi

# One process: batch 8 x 8 accumulated; two: 8 x 4 on each (configs/git_corpus_b64.yaml, 64 segments an update).
if [ "$PROCESSES" -gt 1 ]; then
  LAUNCH=("$(dirname "$PY")/accelerate" launch --multi_gpu --num_processes "$PROCESSES" --num_machines 1
          --mixed_precision bf16 --dynamo_backend no)
  ACCUMULATION=$((8 / PROCESSES))
else
  LAUNCH=("$PY")
  ACCUMULATION=8
fi

train() {  # train OUTPUT_DIR ARGS...: skipped when OUTPUT_DIR/model exists; resumed when it has checkpoints
  local out=$1; shift
  [ -f "$out/model/model.safetensors" ] && return 0
  local resume=()
  [ -d "$out/checkpoints" ] && resume=(--resume_from_checkpoint latest)
  "${LAUNCH[@]}" scripts/train.py --config configs/git_corpus_b64.yaml --data_dir "$CORPUS" \
      --gradient_accumulation_steps "$ACCUMULATION" --max_valid_items 120 --checkpointing_steps 10 \
      --final_model last --output_dir "$out" "$@" ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"} ${resume[@]+"${resume[@]}"}
}

# 1. the full width (Once-for-all's order: the largest network first), L_Cmp in place of the log-magnitude term
FULL_WIDTH_LOSS=(compressed_weight=1.0 stft_mag_factor=0.0)
train "$RUNS/full-width" --stage static --static_utilization 1.0 --model "${FULL_WIDTH_LOSS[@]}" \
    --learning_rate 1e-3 --lr_scheduler cosine --lr_warmup_steps 4 --max_train_steps "$FULL_WIDTH_STEPS" \
    --validation_steps 100
train "$RUNS/full-width-further" --stage static --static_utilization 1.0 --init_from "$RUNS/full-width/model" \
    --model "${FULL_WIDTH_LOSS[@]}" --learning_rate 3e-4 --lr_scheduler cosine --lr_warmup_steps 4 \
    --max_train_steps "$FURTHER_STEPS" --validation_steps 200

# 2-4. every width: per-width output gains, the suppression loss and the slimmed bottleneck; the full width
# weighted 4x and one narrow width sampled per update, each distilled from the full width's output
EVERY_WIDTH=(--distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1)
train "$RUNS/stage1" --stage 1 --init_from "$RUNS/full-width-further/model" \
    --model "${FULL_WIDTH_LOSS[@]}" suppression_weight=1.0 width_gains=true slim_bottleneck=true \
    "${EVERY_WIDTH[@]}" --gain_learning_rate 1e-1 --learning_rate 3e-4 --lr_scheduler cosine --lr_warmup_steps 2 \
    --max_train_steps "$STAGE1_STEPS" --validation_steps 100
train "$RUNS/stage1-pesq" --stage 1 --init_from "$RUNS/stage1/model" --model pesq_weight=0.1 \
    "${EVERY_WIDTH[@]}" --gain_learning_rate 6.7e-2 --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 10 \
    --max_train_steps "$PESQ_STEPS" --validation_steps 80
train "$RUNS/stage2" --stage 2 --init_from "$RUNS/stage1-pesq/model" --target_utilization 0.25 \
    "${EVERY_WIDTH[@]}" --gain_learning_rate 6.7e-2 --max_train_steps "$STAGE2_STEPS" \
    --gumbel_noise_decay_steps $((STAGE2_STEPS * 3 / 4)) --validation_steps 80
train "$RUNS/stage2-tail" --stage 2 --init_from "$RUNS/stage2/model" --target_utilization 0.25 \
    --model suppression_weight=0.3 "${EVERY_WIDTH[@]}" --gain_learning_rate 6.7e-2 --learning_rate 1.5e-4 \
    --max_train_steps "$STAGE2_TAIL_STEPS" --gumbel_noise_decay_steps $((STAGE2_TAIL_STEPS * 3 / 4)) \
    --validation_steps 30
train "$RUNS/stage2-long" --stage 2 --init_from "$RUNS/stage2-tail/model" --target_utilization 0.25 \
    --model suppression_weight=0.1 "${EVERY_WIDTH[@]}" --gain_learning_rate 6.7e-2 --learning_rate 1.5e-4 \
    --max_train_steps "$STAGE2_LONG_STEPS" --gumbel_noise_decay_steps $((STAGE2_LONG_STEPS * 3 / 4)) \
    --validation_steps 80

# 5. the test split: every width, routed and the peers, the clips spread over two worker processes
if [ ! -f "$RUNS/eval-test/evaluation.json" ]; then
  $PY scripts/evaluate.py --model "$RUNS/stage2-long/model" --data_dir "$CORPUS" --split test --max_items "$TEST_ITEMS" \
      --metrics pesq,si_sdr,dnsmos --threads 1 --processes 2 --no_progress --output_dir "$RUNS/eval-test"
fi

# 6. the comparison and the package
$PY scripts/compare_models.py --static "default backbone=$RUNS/eval-test/evaluation.json" \
    --dynamic "target 0.25 (default)=$RUNS/eval-test/evaluation.json" --output_dir "$RUNS/compare"
UPDATES=$((FULL_WIDTH_STEPS + FURTHER_STEPS + STAGE1_STEPS + PESQ_STEPS + STAGE2_STEPS + STAGE2_TAIL_STEPS + STAGE2_LONG_STEPS))
# CPU hours of the updates: each run's logged seconds per update (steps.jsonl, the main process) times the processes
CPU_HOURS=$($PY -c 'import json, sys; from pathlib import Path
seconds = sum(json.loads(line)["seconds"] for run in sys.argv[2:] for line in Path(run, "steps.jsonl").read_text().splitlines() if line.strip())
print(f"{seconds * int(sys.argv[1]) / 3600:.1f}")' "$PROCESSES" "$RUNS"/{full-width,full-width-further,stage1,stage1-pesq,stage2,stage2-tail,stage2-long})
$PY scripts/package_default_model.py --model "$RUNS/stage2-long/model" \
    --comparison "$RUNS/compare/comparison.json" --training "$RUNS/stage2-long/evaluation.json" \
    --dataset_name "git-sources corpus (held-out speakers and noises)" --dataset_id adaslim-git-sources-corpus \
    --train_dataset "the git-sources corpus of scripts/build_corpus.py (docs/training.md): screened recorded speech (speechocean762, CC BY 4.0; LibriSpeech train-clean-100 from Resemblyzer's audio_data, CC BY 4.0) mixed on the fly with recorded noise (ambient recordings of ruiiwang/noise_dataset, no licence stated; Hu's Nonspeech set from speechdnn/Noises, research use only; Debian game/ambience packages; babble); test speakers and noise categories held out" \
    --note "Trained by scripts/make_default_model.sh ($UPDATES updates of 64 four-second segments) on a CPU, far shorter than DEMUCS recipes. Numbers below are this package's own measurements on its held-out test clips." \
    --compute "about $CPU_HOURS CPU hours of updates ($PROCESSES process(es) of one thread), all stages" \
    --destination "$DESTINATION" ${PACKAGE_ARGS[@]+"${PACKAGE_ARGS[@]}"}
mkdir -p "$RESULTS_DIR"
cp "$RUNS/compare/comparison.json" "$RUNS/compare/comparison.md" "$RUNS/compare/pareto_models.png" "$RESULTS_DIR/"
