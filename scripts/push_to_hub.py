#!/usr/bin/env python
"""Publish an AdaSlim model folder on the Hugging Face Hub with its model card.

Writes the exact folder a push uploads (weights as safetensors, config.json, the feature extractor's
preprocessor_config.json when the model folder has one, the model's code files, README.md), checks it
offline (the staged model loads and equals the source, the code files its config and imports name are all
there, the card passes adaslim_hf.cards.check_card), and uploads it with huggingface_hub's upload_folder
unless --dry-run.

    python scripts/push_to_hub.py --model runs/vb-stage2-u0.25/model --repo_id org/adaslim-demucs \
        --evaluation runs/eval/evaluation.json --dataset_id voicebank-demand --dry-run
    python scripts/push_to_hub.py --model runs/vb-stage2-u0.25/model --repo_id org/adaslim-demucs \
        --evaluation runs/eval/evaluation.json --status final

--evaluation takes the card schema (adaslim_hf/cards.py) or the evaluation.json of scripts/evaluate.py; without
it, the evaluation.json training leaves in the model folder is used when it holds results. Without any
results the card says the checkpoint is untrained. Uploading needs a token (HF_TOKEN or `hf auth login`).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

WEIGHT_PATTERNS = ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json")
FEATURE_EXTRACTOR_FILE = "preprocessor_config.json"
DEMO_SCREENSHOT = REPO / "docs" / "demo.png"  # the card shows it (adaslim_hf/templates/model_card_template.md); tests/test_demo.py takes it
# remote files these patterns match and that this push does not write are deleted in the same commit,
# so stale code or weights never linger next to the new ones
DELETE_PATTERNS = ["*.py", "*.safetensors", "*.safetensors.index.json", "*.bin", "config.json",
                   FEATURE_EXTRACTOR_FILE]


class PushError(RuntimeError):
    """Something that stops the push, with a message a person can act on."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder (or a Hub id in the local cache)")
    parser.add_argument("--repo_id", "--repo-id", required=True, help="the Hub repository, ORG/NAME")
    parser.add_argument("--output_dir", "--output-dir", default=None,
                        help="where to write the upload folder (default: a temporary folder, removed after a push; "
                             "kept and printed for --dry-run)")
    parser.add_argument("--evaluation", default=None, help="evaluation JSON for the results and model-index")
    parser.add_argument("--dataset_id", default=None, help="model-index dataset id of the evaluation")
    parser.add_argument("--dataset_name", default=None, help="display name of the evaluation dataset")
    parser.add_argument("--split", default=None, help="evaluated split (default: from the report)")
    parser.add_argument("--target_utilization", type=float, default=None,
                        help="the router's training target, when the evaluation JSON does not record it")
    parser.add_argument("--status", choices=("untrained", "preliminary", "final"), default=None,
                        help="card status (default: untrained without results, else preliminary)")
    parser.add_argument("--license", default="mit", help="Hub license id")
    parser.add_argument("--train_dataset", action="append", default=[], metavar="TEXT",
                        help="a line describing the training data (repeatable)")
    parser.add_argument("--hub_dataset", action="append", default=[], metavar="ID",
                        help="a Hub dataset id used for training, for the card metadata (repeatable)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--commit_message", default="Upload AdaSlim model (safetensors, code, model card)")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="write and check the folder, upload nothing")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------------
# The folder
# ----------------------------------------------------------------------------------------------------


def resolve_model_folder(model: str) -> Path:
    """A local folder as is; otherwise a Hub id resolved from the local cache only (no download)."""
    path = Path(model)
    if path.is_dir():
        return path
    if path.exists():
        raise PushError(f"--model {model} is a file; give the save_pretrained folder.")
    if model.count("/") != 1:
        raise PushError(f"--model {model}: no such folder.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        raise PushError(f"--model {model}: not a folder, and not in the local Hub cache ({error}).") from None


def _weight_files(folder: Path) -> list[Path]:
    files = sorted({p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern)})
    if not any(p.suffix == ".safetensors" for p in files):
        pickled = [p.name for p in folder.glob("*.bin")]
        hint = f" (it has pickled weights {pickled}; re-save with save_pretrained)" if pickled else ""
        raise PushError(f"{folder} has no safetensors weights{hint}.")
    return files


def _relative_imports(source: str) -> set[str]:
    """Sibling modules a code file imports (``from .x import y`` / ``from . import x``)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
    return names


def code_files(folder: Path, config: dict) -> list[Path]:
    """The model's code files, checked complete: every module ``auto_map`` and ``custom_pipelines`` name and
    every sibling module those files import. They come from ``folder``, or, when it holds no code at all (the
    packaged models keep only weights and config: the package is their code), from the installed
    ``adaslim_hf``; never a mix of the two, which could join code of two versions."""
    import adaslim_hf

    code_dir = folder if any(folder.glob("*.py")) else Path(adaslim_hf.__file__).resolve().parent
    wanted = set()
    for reference in (config.get("auto_map") or {}).values():
        for item in reference if isinstance(reference, list) else [reference]:
            if item:
                wanted.add(item.split("--")[-1].split(".")[0])
    for task in (config.get("custom_pipelines") or {}).values():
        impl = task.get("impl") if isinstance(task, dict) else None
        if impl:
            wanted.add(impl.split(".")[0])
    if not wanted:
        raise PushError(f"{folder}/config.json has no auto_map: save the model with adaslim_hf imported "
                        "(AdaSlimModel.from_pretrained(folder).save_pretrained(folder)) so its code travels with it.")
    if code_dir == folder:
        wanted |= {path.stem for path in folder.glob("*.py")}
    found, missing, pending = {}, set(), sorted(wanted)
    while pending:  # the named modules, then the sibling modules each one imports
        name = pending.pop()
        if name in found or name in missing:
            continue
        path = code_dir / f"{name}.py"
        if not path.is_file():
            missing.add(name)
            continue
        found[name] = path
        pending.extend(_relative_imports(path.read_text(encoding="utf-8")))
    if missing:
        raise PushError(f"{code_dir} lacks the code file(s) {sorted(m + '.py' for m in missing)} that its config or "
                        "code names; re-save it with adaslim_hf (save_pretrained copies them).")
    return [found[name] for name in sorted(found)]


def stage_folder(model_dir: Path, output_dir: Path, card, *, overwrite: bool = False) -> list[Path]:
    """Write the upload folder: weights, config.json, preprocessor_config.json (when present), the code files,
    the demo screenshot the card shows (docs/demo.png) and README.md (``card``), copied byte for byte; built next to ``output_dir`` and renamed into place."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise PushError(f"{model_dir} has no config.json: not a save_pretrained folder.")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    files = [config_path, *_weight_files(model_dir), *code_files(model_dir, config)]
    if (model_dir / FEATURE_EXTRACTOR_FILE).is_file():
        files.append(model_dir / FEATURE_EXTRACTOR_FILE)
    if DEMO_SCREENSHOT.is_file():
        files.append(DEMO_SCREENSHOT)
    if output_dir.exists():
        if not overwrite:
            raise PushError(f"{output_dir} already exists; pass --overwrite to replace it.")
        if output_dir.resolve() == model_dir.resolve():
            raise PushError("--output_dir must not be the model folder.")
    from adaslim_hf.atomic import replace_folder

    with replace_folder(output_dir) as building:
        for path in files:
            shutil.copy2(path, building / path.name)
        card.save(building / "README.md")
    return sorted(output_dir.iterdir())


def check_folder(staged: Path, model) -> None:
    """The staged folder loads as the same model (every tensor equal) and its card passes the offline checks."""
    import torch

    from adaslim_hf import AdaSlimModel
    from adaslim_hf.cards import check_card

    loaded = AdaSlimModel.from_pretrained(staged)
    expected = model.state_dict()
    if set(loaded.state_dict()) != set(expected) or not all(
            torch.equal(value, expected[key]) for key, value in loaded.state_dict().items()):
        raise PushError(f"the staged model in {staged} does not equal the source model.")
    check_card(staged / "README.md")
    from huggingface_hub import ModelCard

    ModelCard.load(staged / "README.md")  # the way the Hub library reads it back


# ----------------------------------------------------------------------------------------------------
# The card
# ----------------------------------------------------------------------------------------------------


def build_card_for(args, model, model_dir: Path):
    from adaslim_hf.cards import build_card, load_evaluation

    training_report = None
    report_path = model_dir / "evaluation.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text(encoding="utf-8"))
        if isinstance(report, dict) and "stage" in report:
            training_report = report
    evaluation = None
    identity = {"dataset_id": args.dataset_id, "dataset_name": args.dataset_name, "split": args.split,
                "target_utilization": args.target_utilization}
    if args.evaluation:
        evaluation = load_evaluation(args.evaluation, **identity)
    elif training_report and (training_report.get("settings") or training_report.get("results")):  # (older runs)
        evaluation = load_evaluation(training_report, **identity)
    return build_card(model, repo_id=args.repo_id, evaluation=evaluation, training=training_report,
                      train_datasets=args.train_dataset or None, dataset_ids=args.hub_dataset or None,
                      license=args.license, status=args.status)


# ----------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(args: argparse.Namespace) -> Path:
    from adaslim_hf import AdaSlimModel
    from adaslim_hf.cards import CardError

    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        raise PushError(f"--repo_id must be ORG/NAME, got {args.repo_id!r}.")
    model_dir = resolve_model_folder(args.model)
    try:
        model = AdaSlimModel.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        raise PushError(f"cannot load the model in {model_dir}: {error}") from None
    try:
        card = build_card_for(args, model, model_dir)
    except (CardError, ValueError) as error:
        raise PushError(str(error)) from None

    temporary = args.output_dir is None and not args.dry_run
    if args.output_dir is not None:
        output_dir = Path(args.output_dir)
    elif args.dry_run:
        output_dir = Path(tempfile.mkdtemp(prefix="adaslim-push-")) / args.repo_id.split("/")[-1]
    else:
        output_dir = Path(tempfile.mkdtemp(prefix="adaslim-push-")) / "upload"
    try:
        staged = stage_folder(model_dir, output_dir, card, overwrite=args.overwrite)
        try:
            check_folder(output_dir, model)
        except CardError as error:
            raise PushError(f"the card in {output_dir} fails the offline checks: {error}") from None
        print(f"{'dry run: ' if args.dry_run else ''}folder for {args.repo_id}: {output_dir}")
        for path in staged:
            note = f"  sha256 {_sha256(path)[:16]}" if path.suffix == ".safetensors" else ""
            print(f"  {path.name:32s} {path.stat().st_size:>12,d} bytes{note}")
        print("checks passed: the staged model equals the source; code files complete; card metadata, "
              "model-index and text valid (offline)")
        if args.dry_run:
            print("dry run: nothing uploaded")
            return output_dir
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(args.repo_id, repo_type="model", private=args.private, exist_ok=True)
        commit = api.upload_folder(repo_id=args.repo_id, repo_type="model", folder_path=str(output_dir),
                                   commit_message=args.commit_message, delete_patterns=DELETE_PATTERNS)
        print(f"uploaded: {getattr(commit, 'commit_url', commit)}")
        return output_dir
    finally:
        if temporary:
            shutil.rmtree(output_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    try:
        main(parse_args())
    except PushError as error:
        print(f"push_to_hub: error: {error}", file=sys.stderr)
        sys.exit(2)
