#!/usr/bin/env python
"""How fast a model fits one fixed batch: AdaSlimModel at full width beside the reference DEMUCS (the
``denoiser`` package, installed by ``bootstrap.sh --dev``) at the same hidden size, trained on the very same
clips with the same loss (L_SE: L1 + multi-resolution STFT at 0.1 / 0.1), optimiser and learning rate.

It separates "the implementation learns slowly" from "the recipe or the data are the limit": if both
models need the same number of steps to leave the identity's loss behind on one batch, the slimmable
re-implementation (sliced weights, hand-written backward passes, grouped GRU) is not what holds training
back. docs/training.md quotes its output.

    python scripts/fit_one_batch.py --data_dir data/corpus --steps 150 --output runs/fit-one-batch.json

The models train one after the other in this process (``--models adaslim`` or ``--models denoiser`` runs one
alone, e.g. to run the two at once in two processes). Logged every ``--log_every`` steps: L_SE, the waveform L1 and the SI-SDR of the output, beside the same
numbers for the noisy input itself (the identity).
"""

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np
import torch

from adaslim_hf import AdaSlimConfig, AdaSlimModel
from adaslim_hf.atomic import write_json
from adaslim_hf.evaluation import load_test_set
from adaslim_hf.losses import si_sdr, speech_enhancement_loss

MODELS = ("adaslim", "denoiser")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default="data/corpus", help="a built corpus (scripts/build_corpus.py)")
    parser.add_argument("--dataset", default="corpus", choices=["corpus", "voicebank"])
    parser.add_argument("--split", default="train", choices=["train", "validation", "test"])
    parser.add_argument("--items", type=int, default=8, help="clips in the batch, spread over the split")
    parser.add_argument("--seconds", type=float, default=2.0, help="the first N seconds of each clip")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=32, help="both models' first-layer channels")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--log_every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", help="write the logs here as JSON")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown or not args.models:
        parser.error(f"--models takes names from {list(MODELS)}, got {args.models}.")
    for name in ("items", "steps", "log_every", "hidden", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}.")
    if args.seconds <= 0 or args.learning_rate <= 0:
        parser.error("--seconds and --learning_rate must be positive.")
    return args


def load_batch(data_dir: str, dataset: str, split: str, items: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """noisy, clean [items, samples]: the first ``samples`` of ``items`` clips spread over the split."""
    data = load_test_set(data_dir, dataset, split=split, max_items=items)
    noisy, clean = [], []
    for row in data:
        n, c = np.asarray(row["noisy"]["array"], np.float32), np.asarray(row["clean"]["array"], np.float32)
        if n.shape[-1] < samples:
            raise ValueError(f"clip {row['id']} holds {n.shape[-1]} samples, fewer than the {samples} asked for "
                             "(--seconds).")
        noisy.append(n[:samples])
        clean.append(c[:samples])
    return torch.from_numpy(np.stack(noisy)), torch.from_numpy(np.stack(clean))


def build(name: str, hidden: int):
    """(module, enhance) where enhance(noisy [B, T]) -> enhanced [B, T]."""
    if name == "adaslim":
        model = AdaSlimModel(AdaSlimConfig(hidden=hidden))
        return model, lambda noisy: model(noisy, utilization=1.0).enhanced_values.reshape(noisy.shape)
    try:
        from denoiser.demucs import Demucs
    except ImportError as error:
        raise SystemExit("--models denoiser needs the reference DEMUCS: run `bash scripts/bootstrap.sh --dev` "
                         f"(it installs denoiser==0.1.5), or pass --models adaslim ({error}).") from None
    model = Demucs(hidden=hidden, causal=True, resample=4)
    return model, lambda noisy: model(noisy[:, None])[:, 0]


def measure(estimate: torch.Tensor, clean: torch.Tensor) -> dict:
    return {"l_se": float(speech_enhancement_loss(estimate, clean)), "l1": float((estimate - clean).abs().mean()),
            "si_sdr": float(si_sdr(estimate, clean).mean())}


def fit(name: str, noisy: torch.Tensor, clean: torch.Tensor, args) -> dict:
    torch.manual_seed(args.seed)
    model, enhance = build(name, args.hidden)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    log, start = [], time.perf_counter()
    for step in range(args.steps + 1):
        estimate = enhance(noisy)
        loss = speech_enhancement_loss(estimate, clean)
        if step % args.log_every == 0 or step == args.steps:
            entry = {"step": step, **measure(estimate.detach(), clean), "seconds": time.perf_counter() - start}
            log.append(entry)
            print(f"{name:8s} step {step:4d}  L_SE {entry['l_se']:.4f}  L1 {entry['l1']:.4f}  "
                  f"SI-SDR {entry['si_sdr']:6.2f} dB", flush=True)
        if step == args.steps:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"parameters": sum(p.numel() for p in model.parameters()), "log": log}


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    noisy, clean = load_batch(args.data_dir, args.dataset, args.split, args.items, int(round(args.seconds * 16000)))
    identity = measure(noisy, clean)
    print(f"identity       L_SE {identity['l_se']:.4f}  L1 {identity['l1']:.4f}  SI-SDR {identity['si_sdr']:6.2f} dB")
    result = {"settings": {k: v for k, v in vars(args).items() if k != "output"}, "identity": identity,
              "models": {name: fit(name, noisy, clean, args) for name in args.models}}
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.output, result)
        print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
