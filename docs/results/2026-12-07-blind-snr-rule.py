"""Can a clip-level decision from the noisy input alone beat static 0.25 at the same utilization?

A blind SNR estimate per clip (no clean reference): frame energies in dB over 20 ms frames (10 ms hop), the 95th
percentile minus the 10th (speech peaks over the noise floor). A rule runs each clip at one static width: the
clips whose estimate is above a threshold at the wider width `high`, the others at `low`. Each rule is fitted on
one half of the clips (even or odd positions: the threshold that puts the largest share of clips at `high` with
the mean utilization at most 0.25) and scored on the other half, from the per-clip static scores of an
evaluate.py cache, so nothing is chosen on the clips it scores:

    python docs/results/2026-12-07-blind-snr-rule.py runs/eval-s2sup01g-test/items.jsonl data/corpus-git-v1

Prints the estimate's correlation with the true input SNR and with the width gain, then per rule and fold the
held-out PESQ-WB and mean utilization beside static 0.25 and the routed call on the same clips.
"""
import itertools
import json
import statistics
import sys

import torch

from adaslim_hf.evaluation import load_test_set

FACTORS = (0.125, 0.25, 0.5, 1.0)
NAMES = {0.125: "static 0.125", 0.25: "static 0.25", 0.5: "static 0.5", 1.0: "static 1"}
BUDGET = 0.25


def blind_snr_db(noisy: torch.Tensor, rate: int) -> float:
    """noisy [samples] -> the 95th minus the 10th percentile of 20 ms frame energies (dB), hop 10 ms."""
    frames = noisy.unfold(0, rate // 50, rate // 100)  # [frames, 320]
    energy_db = 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-10)
    return float(torch.quantile(energy_db, 0.95) - torch.quantile(energy_db, 0.10))


def fit_threshold(estimates, low, high):
    """The threshold putting as many clips at `high` (those above it) as the budget allows."""
    share = (BUDGET - low) / (high - low)  # the largest share of clips at `high`
    count = int(share * len(estimates) + 1e-9)
    if count <= 0:
        return float("inf")
    ranked = sorted(estimates, reverse=True)
    return (ranked[count - 1] + ranked[count]) / 2 if count < len(ranked) else float("-inf")


def main(items_path, data_dir):
    items = [json.loads(line) for line in open(items_path) if line.strip()]
    clips = load_test_set(data_dir, "corpus", split="test", max_items=len(items))
    noisy = {row["id"]: row["noisy"] for row in clips}  # {"array", "sampling_rate", "path"}
    estimate = [blind_snr_db(torch.as_tensor(noisy[item["id"]]["array"]).float().flatten(),
                             noisy[item["id"]]["sampling_rate"]) for item in items]
    snr = [item["input_snr"] for item in items]
    gain = [item["settings"]["static 1"]["pesq"] - item["settings"]["static 0.125"]["pesq"] for item in items]
    print(f"{len(items)} clips; r(estimate, input SNR) {statistics.correlation(estimate, snr):+.2f}, "
          f"r(estimate, gain 1.0 over 0.125) {statistics.correlation(estimate, gain):+.2f}, r(input SNR, gain) "
          f"{statistics.correlation(snr, gain):+.2f}")
    folds = {"even": list(range(0, len(items), 2)), "odd": list(range(1, len(items), 2))}
    for fit, score in (("even", "odd"), ("odd", "even")):
        held = folds[score]
        static = statistics.mean(items[i]["settings"]["static 0.25"]["pesq"] for i in held)
        routed = statistics.mean(items[i]["settings"]["dynamic"]["pesq"] for i in held)
        routed_u = statistics.mean(items[i]["settings"]["dynamic"]["mean_utilization"] for i in held)
        print(f"fitted on {fit}, scored on {score} ({len(held)} clips): static 0.25 {static:.3f}; routed "
              f"{routed:.3f} at u {routed_u:.3f}")
        for low, high in itertools.combinations(FACTORS, 2):
            if not low < BUDGET < high:
                continue
            threshold = fit_threshold([estimate[i] for i in folds[fit]], low, high)
            chosen = [high if estimate[i] > threshold else low for i in held]
            pesq = statistics.mean(items[i]["settings"][NAMES[u]]["pesq"] for i, u in zip(held, chosen))
            print(f"  {low} below / {high} above {threshold:.1f} dB: PESQ-WB {pesq:.3f} at u "
                  f"{statistics.mean(chosen):.3f} ({pesq - static:+.3f} against static 0.25)")


if __name__ == "__main__":
    main(*sys.argv[1:])
