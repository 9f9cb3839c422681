"""Train the adaptive-slimming DEMUCS with Accelerate: stage 1 (slimmable backbone), stage 2 (router) or a
static baseline. Every setting lives in adaslim_hf.training.TrainingSettings; a YAML file sets them and
command-line flags override the file.

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

import argparse
import dataclasses
import sys
from pathlib import Path

# scripts/ holds evaluate.py, named like the `evaluate` library the metrics load through: keep this folder off
# the import path, and put the checkout on it (`python scripts/train.py` without an installed package)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from huggingface_hub.errors import StrictDataclassError

from adaslim_hf.training import NonFiniteLossError, TrainingSettings, load_settings, train


def _bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _model_override(text: str):
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--model expects key=value (an AdaSlimConfig field), got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _yaml_mapping(text: str) -> dict:
    import yaml

    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as \"{{'2': {{learning_rate: 3e-4}}}}\", "
                                         f"got {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of settings (keys: the flags below without '--')")
    for setting in dataclasses.fields(TrainingSettings):
        name, help_text = setting.name, setting.metadata.get("help", "")
        annotation = str(setting.type)
        default = setting.default if setting.default is not dataclasses.MISSING else setting.default_factory()
        help_text = f"{help_text} (default: {default!r})"
        if name == "model":
            parser.add_argument("--model", nargs="+", type=_model_override, metavar="KEY=VALUE",
                                help=f"{help_text}; e.g. --model hidden=48 depth=5")
        elif annotation.startswith("dict"):
            parser.add_argument(f"--{name}", type=_yaml_mapping, metavar="YAML", help=help_text)
        elif annotation.startswith("bool"):
            parser.add_argument(f"--{name}", type=_bool, nargs="?", const=True, metavar="true|false", help=help_text)
        elif annotation.startswith("list"):
            parser.add_argument(f"--{name}", nargs="+", help=help_text)
        else:
            kind = int if annotation.startswith("int") else float if annotation.startswith("float") else str
            parser.add_argument(f"--{name}", type=kind, choices=setting.metadata.get("choices"), help=help_text)
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> TrainingSettings:
    overrides = {k: v for k, v in vars(args).items() if v is not None and k != "config"}
    if "model" in overrides:
        overrides["model"] = dict(overrides["model"])
    return load_settings(args.config, overrides)


def main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        train(settings)
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except (ValueError, StrictDataclassError) as error:  # a bad setting or config value, before any step
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
