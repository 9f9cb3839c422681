"""Mean scores of an evaluation, split by speaker, noise source and input SNR.

``scripts/evaluate.py`` averages over the whole test set. Where one model leads another, this says on which
speakers, noises and SNRs:

    python scripts/score_breakdown.py --items runs/eval/items.jsonl --data_dir data/corpus --metric pesq

reads the per-item cache that evaluate.py writes (``items.jsonl``) and, for the corpus of
``scripts/build_corpus.py``, its ``mixtures/mixtures.jsonl`` (the noise source and SNR of every mixture).
Without ``--data_dir`` it groups by speaker only (the id up to its last ``_``, as in ``p232_001`` or
``asterisk-carlo_0002``). Prints a markdown table: one row per group, one column per setting
(``static 0.125``, ``dynamic``, ``noisy``, ``rnnoise``, ...), each cell the mean over the group's items.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=Path, required=True, help="items.jsonl written by scripts/evaluate.py")
    parser.add_argument("--data_dir", type=Path, default=None,
                        help="the corpus folder the evaluation ran on (adds noise-source and SNR groups)")
    parser.add_argument("--metric", default="pesq", help="a metric the evaluation computed (default: %(default)s)")
    return parser.parse_args(argv)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def group_keys(item_id: str, mixture: dict | None) -> list[str]:
    """The groups one item belongs to: all, its speaker, and (corpus) its noise source and SNR."""
    keys = ["all", "speaker " + item_id.rsplit("_", 1)[0]]
    if mixture is not None:
        keys.append("noise " + Path(mixture["noise"][0]).parent.name)
        keys.append(f"snr {mixture['snr_db']:+.0f} dB")
    return keys


def breakdown(items: list[dict], mixtures: dict[str, dict] | None, metric: str) -> tuple[list[str], dict]:
    """(settings, {group: {setting: [scores]}}) over the items that hold ``metric``."""
    settings: list[str] = []
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        mixture = None
        if mixtures is not None:
            mixture = mixtures.get(item["id"])
            if mixture is None:
                raise ValueError(f"item {item['id']} is not in the corpus' mixtures: was the evaluation run on "
                                 f"another data_dir?")
        for setting, scores in item["settings"].items():
            if metric not in scores:
                continue
            if setting not in settings:
                settings.append(setting)
            for key in group_keys(item["id"], mixture):
                groups[key][setting].append(float(scores[metric]))
    if not settings:
        raise ValueError(f"no item holds the metric {metric!r}.")
    return settings, groups


def format_table(settings: list[str], groups: dict, metric: str) -> str:
    def position(key: str):
        kind, _, name = key.partition(" ")
        value = float(name.split(" ")[0]) if kind == "snr" else 0.0
        return (kind != "all", kind, value, name)

    order = sorted(groups, key=position)
    lines = [f"| group ({metric}) | items | " + " | ".join(settings) + " |",
             "|---|---:|" + "---:|" * len(settings)]
    for key in order:
        count = max(len(v) for v in groups[key].values())
        cells = [f"{sum(v) / len(v):.3f}" if (v := groups[key].get(s)) else "-" for s in settings]
        lines.append(f"| {key} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> str:
    if not args.items.is_file():
        raise SystemExit(f"error: {args.items} not found: pass the items.jsonl of an evaluate.py output folder.")
    mixtures = None
    if args.data_dir is not None:
        path = args.data_dir / "mixtures" / "mixtures.jsonl"
        if not path.is_file():
            raise SystemExit(f"error: {path} not found: --data_dir must be a corpus built by scripts/build_corpus.py.")
        mixtures = {m["id"]: m for m in read_jsonl(path)}
    try:
        settings, groups = breakdown(read_jsonl(args.items), mixtures, args.metric)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    table = format_table(settings, groups, args.metric)
    print(table)
    return table


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
