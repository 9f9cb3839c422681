#!/usr/bin/env python
"""How a model's router spends its frames on a test split: the share of router frames at each utilization
factor (issue 5 asks for at least 5% each unless the target forbids it), and, on the same clips, the largest
difference between the grouped inference path and the masked (training) path run with the router's choice.

With --polarity, also the sign of each static width's output on the same clips: its gain against the clean
speech (<enhanced, clean> / <clean, clean>, mean over clips) and the clips where it is negative. PESQ, STOI
and SI-SDR cannot see an inverted output; mixing widths frame by frame can (the SI-SDR of a choice that
alternates between the smallest and the largest factor every 16 router frames is printed beside the two
static ones).

    python scripts/router_usage.py --model adaslim_hf/pretrained/adaslim-demucs \\
        --data_dir data/corpus --max_items 40
"""

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.evaluation import load_test_set
from adaslim_hf.losses import si_sdr

MIX_PERIOD = 16  # router frames per run of one width in the mixing check


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder or Hub id")
    parser.add_argument("--data_dir", default="data/corpus")
    parser.add_argument("--dataset", default="corpus", choices=["corpus", "voicebank"])
    parser.add_argument("--max_items", type=int, default=40, help="test clips, spread evenly over the split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--polarity", action="store_true",
                        help="also report each static width's gain against the clean speech and a mixing check")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    model = AdaSlimModel.from_pretrained(args.model).eval()
    factors = model.config.utilization_factors
    data = load_test_set(args.data_dir, args.dataset, max_items=args.max_items,
                         sample_rate=model.config.sampling_rate)
    counts = torch.zeros(len(factors), dtype=torch.long)
    largest_path_difference = 0.0
    gains = {factor: [] for factor in factors}  # per static width, one gain per clip
    mixing = {"smallest": [], "largest": [], "alternating": []}  # SI-SDR (dB) per clip
    with torch.inference_mode():
        for row in data:
            noisy = torch.as_tensor(row["noisy"]["array"], dtype=torch.float32).reshape(1, -1)  # [1, T]
            routed = model(noisy)  # grouped path, the router deciding
            masked = model(noisy, utilization=routed.choice, execution="masked")
            largest_path_difference = max(largest_path_difference,
                                          float((routed.enhanced_values - masked.enhanced_values).abs().max()))
            counts += torch.bincount(routed.choice.flatten(), minlength=len(factors))
            if args.polarity:
                clean = torch.as_tensor(row["clean"]["array"], dtype=torch.float32).reshape(1, -1)
                for factor in factors:
                    enhanced = model(noisy, utilization=factor).enhanced_values
                    gains[factor].append(float((enhanced * clean).sum() / (clean * clean).sum().clamp(min=1e-12)))
                frames = torch.arange(routed.choice.shape[1])[None]  # [1, N]
                alternating = torch.where((frames // MIX_PERIOD) % 2 == 0, 0, len(factors) - 1)
                for name, utilization in (("smallest", factors[0]), ("largest", factors[-1]),
                                          ("alternating", alternating)):
                    enhanced = model(noisy, utilization=utilization).enhanced_values
                    mixing[name].append(float(si_sdr(enhanced, clean).mean()))
    shares = (counts / counts.sum()).tolist()
    print(f"{args.model} on {len(data)} {args.dataset} test clips ({int(counts.sum())} router frames)")
    for factor, share in zip(factors, shares):
        print(f"  factor {factor:g}: {100 * share:.1f}% of frames")
    print(f"  grouped vs masked path, largest difference: {largest_path_difference:.1e}")
    report = {"factors": list(factors), "shares": shares, "largest_path_difference": largest_path_difference}
    if args.polarity:
        report["polarity"] = {
            f"{factor:g}": {"mean_gain": sum(values) / len(values), "inverted_clips": sum(v < 0 for v in values)}
            for factor, values in gains.items()
        }
        report["mixing_si_sdr"] = {name: sum(values) / len(values) for name, values in mixing.items()}
        for factor, entry in report["polarity"].items():
            print(f"  static {factor}: mean gain against the clean speech {entry['mean_gain']:+.3f}, "
                  f"inverted on {entry['inverted_clips']} of {len(data)} clips")
        mix = report["mixing_si_sdr"]
        print(f"  SI-SDR: static {factors[0]:g} {mix['smallest']:.2f} dB, static {factors[-1]:g} "
              f"{mix['largest']:.2f} dB, alternating between them every {MIX_PERIOD} router frames "
              f"{mix['alternating']:.2f} dB")
    return report


if __name__ == "__main__":
    main(parse_args())
