"""What the ``adaslim`` subcommands share: the usage error, the model loader (folders, Hub ids, the packaged
default) and ``--threads``. ``cli.py`` and the subcommand modules (``cli_evaluate.py``, ``cli_stream.py``) import
it; it imports none of them, and nothing heavy at import time (``adaslim --help`` loads no torch)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

UNTRAINED_SEED = 0


# the packaged default model: pipeline_adaslim.PACKAGED_MODEL, named here without importing torch
DEFAULT_MODEL = Path(__file__).resolve().parent / "pretrained" / "adaslim-demucs"


class UsageError(Exception):
    """Arguments the command cannot run with (exit code 2)."""


def split_list(text: str) -> list[str]:
    """A comma-separated option's entries, stripped, empty ones dropped: "a, b,," -> ["a", "b"]."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_factor_list(text: str, what: str = "--factors") -> list[float]:
    """Comma-separated static factors as a caller writes them (``"0.25, 1"``) -> the floats, in order, each once.
    "auto" names the routed call, which every scoring command reports anyway, so it adds no factor. The one
    parser of factor lists for ``adaslim evaluate`` and ``scripts/score_example.py``; raises ``UsageError``
    ("<what> must be 'auto' or a number, got ...") for anything else."""
    from .configuration_adaslim import parse_utilization

    try:
        parsed = [parse_utilization(part, what=what) for part in split_list(text)]
    except ValueError as error:
        raise UsageError(str(error)) from None
    return list(dict.fromkeys(factor for factor in parsed if factor is not None))


# ----------------------------------------------------------------------------------------------------
# Model loading
# ----------------------------------------------------------------------------------------------------


def _warn_untrained() -> None:
    bar = "!" * 78
    print(
        f"{bar}\n"
        f"WARNING: no trained weights at {DEFAULT_MODEL}.\n"
        f"Using a RANDOMLY INITIALISED AdaSlimModel (default config, seed {UNTRAINED_SEED}).\n"
        "Its output is NOT enhanced speech. Pass --model <folder or Hub id> with trained weights.\n"
        f"{bar}",
        file=sys.stderr,
    )


def load_model(model: str | None) -> tuple[AdaSlimModel, AdaSlimFeatureExtractor, str]:  # noqa: F821
    """(model in eval mode, feature extractor, a description) for a folder, a Hub id, or None (the packaged
    default; a seeded, untrained model with a loud warning when no weights are packaged). transformers'
    weight-loading progress bar stays off: the commands report their own progress (and ``-q`` hides it)."""
    import torch
    from transformers.utils import logging as transformers_logging

    from .configuration_adaslim import AdaSlimConfig
    from .feature_extraction_adaslim import AdaSlimFeatureExtractor
    from .modeling_adaslim import AdaSlimModel

    if model is None:
        if (DEFAULT_MODEL / "config.json").is_file():
            model = str(DEFAULT_MODEL)
        else:
            _warn_untrained()
            torch.manual_seed(UNTRAINED_SEED)
            network = AdaSlimModel(AdaSlimConfig()).eval()
            extractor = AdaSlimFeatureExtractor(sampling_rate=network.config.sampling_rate)
            return network, extractor, f"UNTRAINED (random init, seed {UNTRAINED_SEED}, default config)"
    looks_like_path = model.startswith((os.sep, ".", "~")) or model.endswith(os.sep) or os.path.exists(model)
    if looks_like_path and not os.path.isdir(os.path.expanduser(model)):
        raise UsageError(f"no model folder at {model!r} (expected a save_pretrained folder or a Hub id 'org/name')")
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        network = AdaSlimModel.from_pretrained(os.path.expanduser(model)).eval()
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot load model {model!r}: {error}") from None
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    try:
        extractor = AdaSlimFeatureExtractor.from_pretrained(os.path.expanduser(model))
    except (OSError, ValueError):
        extractor = AdaSlimFeatureExtractor(sampling_rate=network.config.sampling_rate)
    return network, extractor, model


def parse_threads(value: str) -> str | int:
    """--threads: 'auto' or a number of threads >= 1; UsageError otherwise."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise UsageError(f"--threads must be 'auto' or a number of threads >= 1, got {value!r}")
    return threads


# --precision's choices, as products.PRECISIONS (written out here: the CLI parses arguments before torch loads)
PRECISION_CHOICES = ("fp32", "bf16")
PRECISION_HELP = ("fp32 (default) or bf16: the model's encoder and decoder blocks in bfloat16, about 2.5x faster at "
                  "full width on CPUs with AVX-512 BF16 (little faster at narrow widths), output within 1%% of fp32's; "
                  "emulated and many times slower on CPUs without it (AVX2 only), where it warns")

THREADS_HELP = ("CPU threads for torch: 'auto' (default: per chunk, the cores no other process is running on) "
                "or a number")
