#!/usr/bin/env python
"""How a model's router spends its frames on a test split: the share of router frames at each utilization
factor (issue 5 asks for at least 5% each unless the target forbids it), and, on the same clips, the largest
difference between the grouped inference path and the masked (training) path run with the router's choice.

    python scripts/router_usage.py --model adaslim_hf/pretrained/adaslim-demucs-target0.25 \\
        --data_dir data/corpus --max_items 40
"""

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import torch  # noqa: E402

from adaslim_hf import AdaSlimModel  # noqa: E402
from adaslim_hf.evaluation import load_test_set  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder or Hub id")
    parser.add_argument("--data_dir", default="data/corpus")
    parser.add_argument("--dataset", default="corpus", choices=["corpus", "voicebank"])
    parser.add_argument("--max_items", type=int, default=40, help="test clips, spread evenly over the split")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    model = AdaSlimModel.from_pretrained(args.model).eval()
    factors = model.config.utilization_factors
    data = load_test_set(args.data_dir, args.dataset, max_items=args.max_items,
                         sample_rate=model.config.sampling_rate)
    counts = torch.zeros(len(factors), dtype=torch.long)
    largest_path_difference = 0.0
    with torch.inference_mode():
        for row in data:
            noisy = torch.as_tensor(row["noisy"]["array"], dtype=torch.float32).reshape(1, -1)  # [1, T]
            routed = model(noisy)  # grouped path, the router deciding
            masked = model(noisy, utilization=routed.choice, execution="masked")
            largest_path_difference = max(largest_path_difference,
                                          float((routed.enhanced_values - masked.enhanced_values).abs().max()))
            counts += torch.bincount(routed.choice.flatten(), minlength=len(factors))
    shares = (counts / counts.sum()).tolist()
    print(f"{args.model} on {len(data)} {args.dataset} test clips ({int(counts.sum())} router frames)")
    for factor, share in zip(factors, shares):
        print(f"  factor {factor:g}: {100 * share:.1f}% of frames")
    print(f"  grouped vs masked path, largest difference: {largest_path_difference:.1e}")
    return {"factors": list(factors), "shares": shares, "largest_path_difference": largest_path_difference}


if __name__ == "__main__":
    main(parse_args())
