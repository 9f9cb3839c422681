"""How much could any router gain on this model? A frame-level oracle that knows the clean speech: each static
width enhances the clip, every router frame (16 ms) gets each width's error against the clean speech there, and
per clip the frames take the width minimising error + lambda * u_j, with lambda found by bisection so that the
clip's mean utilization is 0.25 at most. The model then runs once more with that choice per frame
(``utilization=choice``: the real switching, not a splice), scored against static 0.25 and the trained router:

    OMP_NUM_THREADS=1 python docs/results/2026-12-07-frame-oracle.py MODEL data/corpus-git-v1 60

Errors: "mse", the squared error summed over the frame (the loud frames dominate); "log", the log of it (every
frame counts alike, closer to what PESQ hears); "mse, spans of K", the squared error summed over K frames with one
width per span (fewer switches: 8 frames are 128 ms, 32 about half a second). The oracle is an upper bound in one
sense only: it is chosen with the clean speech; it still pays what switching widths costs.
"""
import statistics
import sys

import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.evaluation import load_test_set
from adaslim_hf.metrics import compute_all

TARGET = 0.25


def frame_errors(enhanced: torch.Tensor, clean: torch.Tensor, hop: int, frames: int) -> torch.Tensor:
    """enhanced, clean [T] -> squared error summed per router frame [frames] (the last one zero-padded)."""
    error = (enhanced - clean).pow(2)
    error = torch.nn.functional.pad(error, (0, frames * hop - error.shape[0]))
    return error.view(frames, hop).sum(dim=1)


def oracle_choice(errors: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """errors [J, frames] -> factor index per frame [frames] minimising error + lambda * u, mean u <= TARGET."""
    scale = float(errors.abs().mean()) + 1e-12
    low, high = 0.0, 1e3 * scale  # lambda = 0: the least error everywhere; large: every frame at the narrowest
    for _ in range(60):
        middle = (low + high) / 2
        choice = (errors + middle * factors[:, None]).argmin(dim=0)
        low, high = (middle, high) if factors[choice].mean() > TARGET else (low, middle)
    return (errors + high * factors[:, None]).argmin(dim=0)


@torch.no_grad()
def main(model_dir, data_dir, count):
    torch.set_num_threads(1)
    model = AdaSlimModel.from_pretrained(model_dir).eval()
    config = model.config
    factors = torch.tensor(config.utilization_factors)
    clips = load_test_set(data_dir, "corpus", split="validation", max_items=int(count))
    oracles = ("oracle mse", "oracle log", "oracle mse, spans of 8", "oracle mse, spans of 32")
    scores = {name: [] for name in ("static 0.25", "routed", *oracles)}
    utilization = {name: [] for name in scores}
    shares = {name: torch.zeros(len(factors)) for name in oracles}
    for row in clips:
        noisy = torch.as_tensor(row["noisy"]["array"]).float()[None]  # [1, T]
        clean = torch.as_tensor(row["clean"]["array"]).float()
        frames = config.num_router_frames(noisy.shape[-1])
        widths = torch.stack([model(noisy, utilization=float(u)).enhanced_values[0] for u in factors])  # [J, T]
        errors = torch.stack([frame_errors(w, clean, config.router_hop, frames) for w in widths])  # [J, frames]
        outputs = {"static 0.25": model(noisy, utilization=TARGET), "routed": model(noisy)}
        for name, err, span in (("oracle mse", errors, 1), ("oracle log", (errors + 1e-8).log(), 1),
                                ("oracle mse, spans of 8", errors, 8), ("oracle mse, spans of 32", errors, 32)):
            spans = -(-frames // span)
            summed = torch.nn.functional.pad(err, (0, spans * span - frames)).view(len(factors), spans, span).sum(2)
            choice = oracle_choice(summed, factors).repeat_interleave(span)[:frames]  # [frames]
            shares[name] += torch.bincount(choice, minlength=len(factors)).float() / frames
            outputs[name] = model(noisy, utilization=choice[None])
        for name, out in outputs.items():
            scores[name].append(compute_all(out.enhanced_values[0].numpy(), clean.numpy(), metrics=["pesq"])["pesq"])
            utilization[name].append(float(out.mean_utilization.mean()))
    print(f"{len(clips)} validation clips of {data_dir}, model {model_dir}")
    for name in scores:
        valid = [s for s in scores[name] if s == s]
        extra = ""
        if name in shares:
            extra = "; frames at " + " / ".join(f"{100 * s / len(clips):.1f}" for s in shares[name]) + "%"
        print(f"{name}: PESQ-WB {statistics.mean(valid):.3f} at u {statistics.mean(utilization[name]):.3f}{extra}")


if __name__ == "__main__":
    main(*sys.argv[1:])
