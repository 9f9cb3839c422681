"""Thread settings on a busy machine (issue 25, item 1): the default against fixed thread counts for
`adaslim enhance`, `adaslim stream` and the pipeline, with a busy loop on one core in the background.

    .venv/bin/python scripts/benchmark_threads.py                  # busy loop on, every scenario, 3 rounds
    .venv/bin/python scripts/benchmark_threads.py --idle           # the same without the busy loop
    .venv/bin/python scripts/benchmark_threads.py --smoke          # 2 s of audio, one round: does it run

Each run is a fresh process, as a user would start it: the commands through the console script (`adaslim
enhance IN -o OUT --overwrite -q [--threads N]`, `adaslim stream IN OUT --overwrite [--threads N]`) and the
pipeline as the README uses it (`from transformers import pipeline; import adaslim_hf; pipeline(
"speech-enhancement")(IN[, threads=N])`), with the environment of this script (set neither OMP_NUM_THREADS
nor OMP_WAIT_POLICY / GOMP_SPINCOUNT when measuring the defaults). Reported per run: wall seconds of the
work itself, timed inside the process after the imports (the commands' model loading and file reading are
included; the interpreter start and the imports of torch and transformers are not). Rounds go round-robin over the settings; medians are printed with the
ratio of each setting to the best one of its scenario. The target: default <= 1.5 x best, busy or not.

The busy loop is `python3 -c 'while 1: pass'` (one process, one core's worth; --pin puts it on CPU 0), started
before the first run and ended (by its pid) after the last. Quote only numbers from an otherwise quiet machine.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "noisy_example.wav"
BIN = Path(sys.executable).parent

# Each run prints the seconds of its work on the last line of stdout. The imports come first and are not timed
# (on a loaded 2-core machine they take longer than the work on a short file); the command line does what the
# console script does before torch loads (adaslim_hf.cli.main calls limit_openmp_spinning first) and then
# runs main(argv) itself, model loading included.
ENHANCE = """
import sys, time
from adaslim_hf import cli
cli.limit_openmp_spinning()
import torch, transformers, adaslim_hf.pipeline_adaslim, adaslim_hf.cli_stream
start = time.perf_counter()
code = cli.main(sys.argv[1:])
print(f"ELAPSED {time.perf_counter() - start:.4f}")
sys.exit(code)
"""
PIPELINE = """
import sys, time
from transformers import pipeline
import adaslim_hf
enhancer = pipeline("speech-enhancement")
threads = None if sys.argv[2] == "default" else int(sys.argv[2])
start = time.perf_counter()
result = enhancer(sys.argv[1]) if threads is None else enhancer(sys.argv[1], threads=threads)
print(f"ELAPSED {time.perf_counter() - start:.4f}")
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="audio for enhance and the pipeline (default 120)")
    parser.add_argument("--stream-seconds", type=float, default=20.0, help="audio for stream (default 20)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="fixed thread counts to compare with the default")
    parser.add_argument("--scenarios", default="enhance,stream,pipeline")
    parser.add_argument("--idle", action="store_true", help="no busy loop")
    parser.add_argument("--pin", action="store_true", help="pin the busy loop to CPU 0")
    parser.add_argument("--smoke", action="store_true", help="2 s of audio, one round (checks that it runs)")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args()


def write_input(path: Path, seconds: float) -> None:
    import numpy as np
    import soundfile

    samples, rate = soundfile.read(EXAMPLE, dtype="float32")
    length = int(seconds * rate)
    soundfile.write(path, np.tile(samples, -(-length // len(samples)))[:length], rate, subtype="PCM_16")


def command(scenario: str, setting: str, folder: Path) -> list[str]:
    python = sys.executable
    flag = [] if setting == "default" else ["--threads", setting]
    if scenario == "enhance":
        return [python, "-c", ENHANCE, "enhance", str(folder / "long.wav"), "-o", str(folder / "out"), "--overwrite",
                "-q", *flag]
    if scenario == "stream":
        return [python, "-c", ENHANCE, "stream", str(folder / "short.wav"), str(folder / "streamed.wav"),
                "--overwrite", *flag]
    return [python, "-c", PIPELINE, str(folder / "long.wav"), setting]


def run(arguments: list[str]) -> float:
    result = subprocess.run(arguments, capture_output=True, text=True, cwd=REPO, check=False)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(arguments[:1] + arguments[3:])}\n{result.stderr[-3000:]}")
    return float(result.stdout.strip().splitlines()[-1].split()[1])


def main(args):
    if args.smoke:
        args.seconds, args.stream_seconds, args.rounds = 2.0, 2.0, 1
    settings = ["default", *[value.strip() for value in args.threads.split(",") if value.strip()]]
    scenarios = [value.strip() for value in args.scenarios.split(",") if value.strip()]
    folder = Path(tempfile.mkdtemp(prefix="adaslim-threads-"))
    busy = None
    try:
        write_input(folder / "long.wav", args.seconds)
        write_input(folder / "short.wav", args.stream_seconds)
        if not args.idle:
            busy = subprocess.Popen(["python3", "-c", "while 1: pass"])
            if args.pin and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(busy.pid, {0})
            time.sleep(1.0)
        times = {(scenario, setting): [] for scenario in scenarios for setting in settings}
        for _ in range(args.rounds):
            for scenario in scenarios:
                for setting in settings:
                    times[scenario, setting].append(run(command(scenario, setting, folder)))
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for scenario in scenarios:
        medians = {setting: statistics.median(times[scenario, setting]) for setting in settings}
        best = min(medians.values())
        for setting in settings:
            rows.append({"scenario": scenario, "threads": setting, "median_seconds": medians[setting],
                         "ratio_to_best": medians[setting] / best, "runs": times[scenario, setting]})
    load = "idle" if args.idle else "one busy loop" + (" pinned to CPU 0" if args.pin else "")
    print(f"{load}; enhance and pipeline {args.seconds:g} s, stream {args.stream_seconds:g} s of audio; "
          f"medians of {args.rounds} round(s); os.cpu_count() = {os.cpu_count()}")
    print("| scenario | threads | median (s) | ratio to best |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['scenario']} | {row['threads']} | {row['median_seconds']:.2f} | {row['ratio_to_best']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, "seconds": args.seconds, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main(parse_args())
