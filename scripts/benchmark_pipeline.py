"""What the speech-enhancement pipeline costs against the bare model call on the same audio (issue 25, item 10).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_pipeline.py --threads 1 --repeats 9

For each setting (static factors and the router deciding) it times, round-robin, one bare model call on the
whole input (``model(noisy, utilization=...)``: the input checks, normalisation, the model, no file I/O) and one
pipeline call on the same array (``pipe(noisy, utilization=..., threads=N)``: chunks of --chunk-seconds whose
streamers carry the causal model's state, the back-to-input-rate path, the summary), and reports medians of
wall and CPU time, their ratio, and the largest |pipeline - model| difference. Run it on an otherwise idle
machine; the numbers printed are the only ones to quote.
"""

import argparse
import json
import statistics
import time

import numpy as np
import soundfile as sf
import torch


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the packaged model)")
    parser.add_argument("--audio", default="examples/noisy_example.wav", help="16 kHz mono speech, tiled to --seconds")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--chunk-seconds", type=float, default=None, help="pipeline chunk length (default: its own)")
    parser.add_argument("--utilizations", default="1.0,0.25,0.125,auto")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args()


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(args):
    from adaslim_hf import AdaSlimModel, SpeechEnhancementPipeline
    from adaslim_hf.configuration_adaslim import parse_utilization
    from adaslim_hf.pipeline_adaslim import PACKAGED_MODEL

    torch.set_num_threads(args.threads)
    model = AdaSlimModel.from_pretrained(args.model or str(PACKAGED_MODEL)).eval()
    pipe = SpeechEnhancementPipeline(model=model)
    samples, rate = sf.read(args.audio, dtype="float32")
    if rate != model.config.sampling_rate or samples.ndim != 1:
        raise SystemExit(f"{args.audio}: expected mono at {model.config.sampling_rate} Hz, got {samples.shape} at {rate} Hz")
    length = int(args.seconds * rate)
    noisy = np.tile(samples, -(-length // samples.shape[0]))[:length]
    tensor = torch.from_numpy(noisy)[None]
    extra = {} if args.chunk_seconds is None else {"chunk_length_s": args.chunk_seconds}
    rows = []
    for setting in args.utilizations.split(","):
        utilization = parse_utilization(setting, what="--utilizations")

        def bare(utilization=utilization):
            with torch.inference_mode():
                return model(tensor, utilization=utilization).enhanced_values[0].numpy()

        def piped(utilization=utilization):
            return pipe(noisy, utilization="auto" if utilization is None else utilization, threads=args.threads,
                        **extra)["audio"]

        reference, enhanced = bare(), piped()  # warm-up (weight caches, TorchScript)
        difference = float(np.abs(enhanced - reference).max())
        times = {"model": ([], []), "pipeline": ([], [])}
        for _ in range(args.repeats):
            for name, function in (("model", bare), ("pipeline", piped)):
                _, wall, cpu = timed(function)
                times[name][0].append(wall)
                times[name][1].append(cpu)
        medians = {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}
        rows.append({"utilization": setting, "model_wall": medians["model"][0], "model_cpu": medians["model"][1],
                     "pipeline_wall": medians["pipeline"][0], "pipeline_cpu": medians["pipeline"][1],
                     "wall_ratio": medians["pipeline"][0] / medians["model"][0],
                     "cpu_ratio": medians["pipeline"][1] / medians["model"][1], "max_difference": difference})
    print(f"{args.seconds:g} s of {args.audio}, {args.threads} thread(s), medians of {args.repeats} rounds")
    print("| utilization | model wall (s) | pipeline wall (s) | wall ratio | model CPU (s) | pipeline CPU (s) | CPU ratio "
          "| max abs difference |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['utilization']} | {row['model_wall']:.3f} | {row['pipeline_wall']:.3f} | {row['wall_ratio']:.3f} "
              f"| {row['model_cpu']:.3f} | {row['pipeline_cpu']:.3f} | {row['cpu_ratio']:.3f} "
              f"| {row['max_difference']:.1e} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seconds": args.seconds, "threads": args.threads, "repeats": args.repeats, "rows": rows}, handle,
                      indent=2)


if __name__ == "__main__":
    main(parse_args())
