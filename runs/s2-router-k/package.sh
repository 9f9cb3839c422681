# package run K as the default (after bash runs/s2-router-k/eval-test.sh); CPU_HOURS: the lineage's total
set -euo pipefail
CPU_HOURS=$1
python scripts/compare_models.py --static "default backbone=runs/eval-k-test/evaluation.json" \
    --dynamic "target 0.25 (default)=runs/eval-k-test/evaluation.json" --output_dir runs/compare-git-k
cp runs/compare-git-k/comparison.json runs/compare-git-k/comparison.md runs/compare-git-k/pareto_models.png docs/results/default-model/
python scripts/package_default_model.py --model runs/s2-router-k/model \
    --comparison docs/results/default-model/comparison.json --training runs/s2-router-k/evaluation.json \
    --dataset_name "git-sources corpus (held-out speakers and noises)" --dataset_id adaslim-git-sources-corpus \
    --train_dataset "the git-sources corpus of scripts/build_corpus.py (docs/training.md): 2.61 h of screened recorded speech from 328 training speakers (speechocean762, CC BY 4.0; LibriSpeech train-clean-100 from Resemblyzer's audio_data, CC BY 4.0) mixed on the fly with 5.3 h of recorded noise (ambient recordings of ruiiwang/noise_dataset, no licence stated; Hu's Nonspeech set from speechdnn/Noises, research use only; Debian game/ambience packages; babble); test speakers and noise categories held out" \
    --compute "about $CPU_HOURS CPU hours of updates on a 2-core x86-64 CPU, all stages (docs/results/default-model/how-these-weights-were-made.md)" \
    --note "Retrained on 2026-12-05 to 2026-12-07 on a 2-core CPU (docs/results/default-model/how-these-weights-were-made.md): about $(printf "%.0f" "$CPU_HOURS") CPU hours, far shorter than DEMUCS recipes. Numbers below are this package's own measurements on its held-out test clips."
rm -f tests/fixtures/packaged_outputs.safetensors
ADASLIM_RECORD_PINNED=1 python -m pytest -q -k pinned tests/test_packaged_model.py
python scripts/score_example.py --factors 0.125,1.0
