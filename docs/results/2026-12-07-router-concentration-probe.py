"""Does the router's frame-by-frame choice beat static 0.25 at the same MACs? A prior toward the target factor
is added to its scores, offsets -mu * |log2(u_j / 0.25)| (0 at 0.25, -mu at 0.125 and 0.5, -2 mu at 1.0), the router
is calibrated again to mean utilization 0.25 on the first 64 training segments (as training's own calibration
does), and the routed call is scored on the validation split (120 clips, PESQ-WB and SI-SDR): mu = 0 is the
router as trained, a large mu is static 0.25. One JSON line per mu.

    OMP_NUM_THREADS=1 python docs/results/2026-12-07-router-concentration-probe.py MODEL 0,0.05,0.1,0.25,0.5,1,2,8 \
        > runs/router-concentration-g/validation.jsonl

Needs the git-sources corpus (data/corpus-git-noise). Each mu costs a routed pass over the split (about 2 min).
"""
import copy
import json
import sys

import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.training import calibrate_router
from adaslim_hf.training.data import build_datasets, calibration_batches
from adaslim_hf.training.loop import make_collator
from adaslim_hf.training.settings import load_settings
from adaslim_hf.training.validation import evaluate

TARGET = 0.25

torch.set_num_threads(1)
model_dir, mus = sys.argv[1], [float(value) for value in sys.argv[2].split(",")]
model = AdaSlimModel.from_pretrained(model_dir).eval()
settings = load_settings("configs/git_corpus_b64.yaml", {"stage": "2", "data_dir": "data/corpus-git-noise"})
train_set, valid_set, _ = build_datasets(settings, model.config)
batches = calibration_batches(train_set, 64, 8, make_collator(model.config))
prior = -(torch.tensor(model.config.utilization_factors) / TARGET).log2().abs()  # [J]
for mu in mus:
    concentrated = copy.deepcopy(model)
    concentrated.router.projection.bias.data += mu * prior
    calibration = calibrate_router(concentrated, batches, target=TARGET, min_share=0.0)
    routed = evaluate(concentrated, valid_set, [None], batch_size=4, max_items=120)["dynamic"]
    print(json.dumps({"mu": mu, "lambda": round(calibration["lambda"], 4),
                      "frames_per_factor": [round(share, 3) for share in calibration["shares_after"]],
                      "pesq": round(routed["pesq"], 4), "si_sdr": round(routed["si_sdr"], 3),
                      "mean_utilization": round(routed["mean_utilization"], 4),
                      "macs_per_sample": round(routed["macs_per_sample"])}), flush=True)
