"""Model set-ups that several test modules share (imported as ``from helpers import ...``: pytest puts
this folder on sys.path, as it has no __init__.py)."""

from pathlib import Path

import torch

# where the package keeps its trained models (adaslim_hf/pretrained/<name>/config.json)
PRETRAINED = Path(__file__).resolve().parents[1] / "adaslim_hf" / "pretrained"


def randomize_width_gains(model, low=0.5, high=1.5):
    """With ``width_gains``: draw every block's per-width gains from U(low, high), away from their starting 1
    (at which a model equals the one without them); a model without gains is left as it is."""
    with torch.no_grad():
        for block in [*model.encoder, *model.decoder]:
            if hasattr(block, "width_gain"):
                block.width_gain.uniform_(low, high)
    return model


def amplify_bottleneck(model):
    """Scale the grouped GRU's input weights and the first decoder block so that the bottleneck's output shows
    in the model's output (a random tiny model hardly passes it on): what a slimmed bottleneck leaves out is
    then visible above a test's tolerance."""
    with torch.no_grad():
        for gru in model.bottleneck.grus:
            gru.weight_ih_l0.mul_(4)
        model.decoder[0].conv_in.weight.mul_(20)
    return model


def packaged_model_names() -> list[str]:
    """The folder names of every model the package ships (``adaslim_hf/pretrained/<name>/config.json``)."""
    return sorted(config.parent.name for config in PRETRAINED.glob("*/config.json"))
