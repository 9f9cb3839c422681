"""Where the router spends its width against where width pays, from an evaluate.py per-clip cache
(docs/results/2026-12-07-stage2-longer-and-lsup-off.md, "Where the router spends its width"):

    python docs/results/2026-12-07-router-allocation.py runs/eval-s2sup01f-test/items.jsonl

Prints, by input-SNR band, the PESQ-WB gain of the widest static width over the narrowest and the routed mean
utilization; the correlations between them; a clip-level oracle (each clip at one static width, upgraded greedily
by gain per unit of utilization under a sample-weighted budget); and SNR-threshold rules. Both bounds are chosen on
the clips they score (optimistic)."""

import json
import statistics
import sys

FACTORS = (0.125, 0.25, 0.5, 1.0)
NAMES = ("static 0.125", "static 0.25", "static 0.5", "static 1")


def oracle(items, budget):
    weights = [item["num_samples"] for item in items]
    total = sum(weights)
    choice = [0] * len(items)
    used = FACTORS[0]
    while True:
        best = None
        for i, item in enumerate(items):
            for j in range(choice[i] + 1, len(FACTORS)):
                gain = item["settings"][NAMES[j]]["pesq"] - item["settings"][NAMES[choice[i]]]["pesq"]
                cost = weights[i] * (FACTORS[j] - FACTORS[choice[i]]) / total
                if gain > 0 and used + cost <= budget + 1e-9 and (best is None or gain / cost > best[0]):
                    best = (gain / cost, i, j, cost)
        if best is None:
            break
        _, i, j, cost = best
        choice[i], used = j, used + cost
    return statistics.mean(item["settings"][NAMES[c]]["pesq"] for item, c in zip(items, choice)), used


def main(path):
    items = [json.loads(line) for line in open(path) if line.strip()]
    snr = [item["input_snr"] for item in items]
    gain = [item["settings"][NAMES[-1]]["pesq"] - item["settings"][NAMES[0]]["pesq"] for item in items]
    routed_u = [item["settings"]["dynamic"]["mean_utilization"] for item in items]
    for low, high in ((-99, 0), (0, 5), (5, 10), (10, 15), (15, 99)):
        band = [i for i, s in enumerate(snr) if low <= s < high]
        print(f"SNR [{low}, {high}) dB: {len(band)} clips, gain {statistics.mean(gain[i] for i in band):.3f}, "
              f"routed u {statistics.mean(routed_u[i] for i in band):.3f}")
    print(f"r(gain, SNR) {statistics.correlation(gain, snr):+.2f}, r(routed u, SNR) {statistics.correlation(routed_u, snr):+.2f}, "
          f"r(routed u, gain) {statistics.correlation(routed_u, gain):+.2f}")
    for budget in (0.256, 0.3, 0.5):
        print("clip-level oracle at budget %.3f: PESQ-WB %.3f at u %.3f" % (budget, *oracle(items, budget)))
    total = sum(item["num_samples"] for item in items)
    for threshold in (5, 8):
        wide = [s >= threshold for s in snr]
        pesq = statistics.mean(item["settings"][NAMES[2] if w else NAMES[0]]["pesq"] for item, w in zip(items, wide))
        u = sum(item["num_samples"] * (0.5 if w else 0.125) for item, w in zip(items, wide)) / total
        print(f"rule 0.5 at SNR >= {threshold} dB else 0.125: PESQ-WB {pesq:.3f} at u {u:.3f}")
    print("routed: PESQ-WB %.3f" % statistics.mean(item["settings"]["dynamic"]["pesq"] for item in items))


if __name__ == "__main__":
    main(sys.argv[1])
