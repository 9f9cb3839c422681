#!/usr/bin/env python
"""Undo a polarity inversion of the narrow widths of a model trained without L_Pol (losses.polarity_loss).

    python scripts/repair_polarity.py --model runs/default/stage1/model --inverted_factors 0.125 0.25 \\
        --output runs/repaired/model

A slimmable backbone trained with the STFT loss alone can output -clean at its narrow widths (the stage-1
backbone of 2026-12-01 did at 0.125 and 0.25). Every width w is read out by the outermost decoder block's
transposed convolution from its first slim_width(0, w) internal channels, so negating those channels' weights
flips the inverted widths exactly (up to the output bias), and changes the wider widths, which read these
channels too. The repaired folder is meant as the start of a stage-1 fine-tune with L_Pol (docs/training.md),
which re-fits the wider widths; the gains printed before and after (on validation clips, never the test
split) show what the flip did.
"""

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.atomic import save_pretrained
from adaslim_hf.evaluation import load_test_set


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder")
    parser.add_argument("--inverted_factors", type=float, nargs="+", required=True,
                        help="the factors whose output is inverted (scripts/router_usage.py --polarity)")
    parser.add_argument("--output", required=True, type=Path, help="new save_pretrained folder (must not exist)")
    parser.add_argument("--data_dir", default="data/corpus")
    parser.add_argument("--dataset", default="corpus", choices=["corpus", "voicebank"])
    parser.add_argument("--max_items", type=int, default=8, help="validation clips for the gains report")
    return parser.parse_args(argv)


def gains(model: AdaSlimModel, data) -> dict[float, float]:
    """Mean gain <enhanced, clean> / <clean, clean> over the clips, per static factor."""
    result = {}
    with torch.inference_mode():
        for factor in model.config.utilization_factors:
            values = []
            for row in data:
                noisy = torch.as_tensor(row["noisy"]["array"], dtype=torch.float32).reshape(1, -1)
                clean = torch.as_tensor(row["clean"]["array"], dtype=torch.float32).reshape(1, -1)
                enhanced = model(noisy, utilization=factor).enhanced_values
                values.append(float((enhanced * clean).sum() / (clean * clean).sum().clamp(min=1e-12)))
            result[factor] = sum(values) / len(values)
    return result


def flip_narrow_widths(model: AdaSlimModel, inverted_factors) -> int:
    """Negate the outermost decoder block's read-out of the internal channels that the largest inverted factor
    uses; -> how many channels were flipped."""
    config = model.config
    indices = [config.factor_index(float(factor)) for factor in inverted_factors]  # ValueError for unknown ones
    if max(indices) == config.num_factors - 1:
        raise ValueError("the largest factor cannot be repaired this way: every width reads its channels "
                         f"(inverted_factors {list(inverted_factors)}).")
    channels = config.slim_width(0, max(indices))
    outermost = model.decoder[-1]
    with torch.no_grad():
        outermost.conv_tr.weight[:channels] *= -1  # [internal channels, chout, kernel]
    return channels


def main(args: argparse.Namespace) -> dict:
    if args.output.exists():
        raise SystemExit(f"error: {args.output} exists; choose a new folder.")
    model = AdaSlimModel.from_pretrained(args.model).eval()
    data = load_test_set(args.data_dir, args.dataset, split="validation", max_items=args.max_items,
                         sample_rate=model.config.sample_rate)
    before = gains(model, data)
    channels = flip_narrow_widths(model, args.inverted_factors)
    after = gains(model, data)
    save_pretrained(model, args.output)
    print(f"flipped the first {channels} internal channels of the outermost decoder block; saved {args.output}")
    print("factor | gain before | gain after   (mean <enhanced, clean> / <clean, clean> over "
          f"{len(data)} validation clips)")
    for factor in model.config.utilization_factors:
        print(f"{factor:g} | {before[factor]:+.3f} | {after[factor]:+.3f}")
    return {"channels": channels, "before": before, "after": after}


if __name__ == "__main__":
    main(parse_args())
