"""Convert a facebookresearch/denoiser checkpoint (e.g. dns48-11decc9d8e3f0998.th) to a save_pretrained folder.

    python scripts/convert_denoiser.py --checkpoint dns48-11decc9d8e3f0998.th --preset dns48 --output adaslim-dns48

The folder holds model.safetensors, config.json and the model code (loadable with trust_remote_code=True).
At utilization 1.0 the converted model equals denoiser's; smaller factors and the router need fine-tuning
(scripts/train.py, stage 1 then stage 2) before they are useful.
"""

import argparse
import sys

from adaslim_hf.convert_denoiser import DENOISER_PRESETS, convert_denoiser, load_denoiser_state_dict


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="denoiser .th file (a Demucs state dict)")
    parser.add_argument("--preset", choices=sorted(DENOISER_PRESETS), help="hyper-parameters of a published model")
    parser.add_argument("--hidden", type=int, help="override: Demucs hidden")
    parser.add_argument("--causal", type=int, choices=(0, 1), help="override: Demucs causal")
    parser.add_argument("--stride", type=int, help="override: Demucs stride")
    parser.add_argument("--resample", type=int, help="override: Demucs resample")
    parser.add_argument("--output", required=True, help="folder to write (must not exist or be empty)")
    return parser.parse_args(argv)


def main(args) -> int:
    settings = dict(DENOISER_PRESETS.get(args.preset, {}))
    for name in ("hidden", "stride", "resample"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    if args.causal is not None:
        settings["causal"] = bool(args.causal)
    model = convert_denoiser(load_denoiser_state_dict(args.checkpoint), **settings)
    from pathlib import Path

    output = Path(args.output)
    if output.exists() and any(output.iterdir()):
        raise SystemExit(f"error: {output} exists and is not empty; choose a new folder.")
    model.save_pretrained(output)
    print(f"wrote {output} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(parse_args()))
    except ValueError as error:
        sys.exit(f"error: {error}")
