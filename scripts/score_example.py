#!/usr/bin/env python
"""Score the README's example: `examples/noisy_example.wav` enhanced by a model (routed, and at any static
factors asked for) and by the peers, against `examples/clean_example.wav` (its clean reference, sample for
sample). Prints a markdown table of PESQ-WB, SI-SDR and DNSMOS (SIG / BAK / OVRL) with the noisy input's row
first, so that "does the main command audibly remove noise" has a number (DNSMOS BAK before and after).

    python scripts/score_example.py                                   # the packaged default, routed, and both peers
    python scripts/score_example.py --model runs/x/model --factors 0.25,1.0 --no_deepfilternet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

EXAMPLES = _HERE.parent / "examples"
METRICS = ("pesq", "si_sdr", "dnsmos")
COLUMNS = ("pesq", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="a save_pretrained folder or Hub id (default: the packaged model)")
    parser.add_argument("--factors", default="", help="comma-separated static factors to score beside the routed call")
    parser.add_argument("--noisy", type=Path, default=EXAMPLES / "noisy_example.wav")
    parser.add_argument("--clean", type=Path, default=EXAMPLES / "clean_example.wav")
    parser.add_argument("--no_rnnoise", action="store_true")
    parser.add_argument("--no_deepfilternet", action="store_true")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    import torch

    from adaslim_hf.audio_io import load_audio
    from adaslim_hf.cli_common import UsageError, load_model, parse_factor_list
    from adaslim_hf.evaluation import DYNAMIC, NOISY, run_model, setting_name
    from adaslim_hf.metrics import compute_all
    from adaslim_hf.peers import DEEPFILTERNET, RNNOISE, PeerUnavailableError, require, run_peer
    from adaslim_hf.pipeline_adaslim import PACKAGED_MODEL

    torch.set_num_threads(1)
    try:
        factors = parse_factor_list(args.factors)  # "auto" is the routed row, scored anyway
    except UsageError as error:
        raise SystemExit(f"error: {error}") from None
    noisy, rate = load_audio(args.noisy)
    clean, clean_rate = load_audio(args.clean)
    if rate != 16000 or clean_rate != 16000 or noisy.shape != clean.shape:
        raise SystemExit(f"error: expected two 16 kHz files of one shape, got {args.noisy} ({rate} Hz, "
                         f"{list(noisy.shape)}) and {args.clean} ({clean_rate} Hz, {list(clean.shape)}).")
    noisy, clean = noisy[0], clean[0]  # the first channel: [samples]
    try:
        model = load_model(args.model or str(PACKAGED_MODEL))[0]
    except UsageError as error:
        raise SystemExit(f"error: {error}") from None
    outputs = {NOISY: noisy}
    with torch.inference_mode():
        outputs[DYNAMIC] = run_model(model, noisy, None)["enhanced"]
        for factor in factors:
            outputs[setting_name(factor)] = run_model(model, noisy, factor)["enhanced"]
    peers = [name for name, skip in ((RNNOISE, args.no_rnnoise), (DEEPFILTERNET, args.no_deepfilternet)) if not skip]
    try:
        for name in peers:
            require(name)
            outputs[name] = run_peer(name, noisy, rate)[0]
    except PeerUnavailableError as error:
        raise SystemExit(f"error: {error}") from None
    scores = {name: compute_all(audio, clean, sample_rate=rate, metrics=METRICS) for name, audio in outputs.items()}
    print(f"{args.noisy.name} against {args.clean.name}, model {args.model or PACKAGED_MODEL.name}")
    print("| setting | PESQ-WB | SI-SDR (dB) | DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in scores.items():
        print(f"| {name} | " + " | ".join(f"{row[key]:.2f}" for key in COLUMNS) + " |")
    return scores


if __name__ == "__main__":
    main(parse_args())
