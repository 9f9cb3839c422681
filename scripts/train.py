"""Train the adaptive-slimming DEMUCS with Accelerate: stage 1 (slimmable backbone), stage 2 (router) or a
static baseline. Every setting lives in adaslim_hf.training.TrainingSettings (the flags below are built from it by
transformers.HfArgumentParser); a YAML file sets them and command-line flags override the file.

    # stage 1 then stage 2 on the real-audio corpus (this 2-core CPU, under two hours together)
    python scripts/train.py --config configs/corpus_cpu.yaml --stage 1 --output_dir runs/corpus-stage1
    python scripts/train.py --config configs/corpus_cpu.yaml --stage 2 --init_from runs/corpus-stage1/model \\
        --target_utilization 0.25 --output_dir runs/corpus-stage2-u0.25

    # the same on two processes (gloo on CPU; on GPUs drop --cpu), and resuming after an interruption
    accelerate launch --num_processes 2 --cpu scripts/train.py --config configs/smoke.yaml --output_dir runs/smoke
    python scripts/train.py --config configs/corpus_cpu.yaml --output_dir runs/corpus-stage1 \\
        --resume_from_checkpoint latest

Outputs under --output_dir: checkpoints/checkpoint_N (accelerate state + a save_pretrained copy),
logs/ (tensorboard), steps.jsonl (one line per optimizer step), best/ (best validation weights), model/
(the final save_pretrained folder with evaluation.json) and evaluation.json.
"""

import sys
from pathlib import Path

# scripts/ holds evaluate.py, named like the `evaluate` library the metrics load through: keep this folder off
# the import path, and put the checkout on it (`python scripts/train.py` without an installed package)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from huggingface_hub.errors import StrictDataclassError

from adaslim_hf.training import NonFiniteLossError, load_settings, parse_flags, train


def parse_args(argv=None) -> tuple[str | None, dict]:
    """-> (the --config file or None, the settings given as flags)."""
    return parse_flags(argv, description=__doc__)


def main(args: tuple[str | None, dict]) -> int:
    config, flags = args
    try:
        train(load_settings(config, flags))
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except (ValueError, StrictDataclassError) as error:  # a bad setting or config value, before any step
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
