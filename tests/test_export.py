"""ONNX export: every static factor and the router, run by onnxruntime, equal the torch model (<= 1e-4) at
lengths other than the traced one and at other batch sizes; the loop-free export modules equal the model's
inference paths exactly; the CLI subcommand writes and checks a graph and refuses bad arguments clearly."""

import contextlib
import io
import json

import pytest
import torch
from helpers import randomize_width_gains

from adaslim_hf import AdaSlimConfig, AdaSlimModel

onnx = pytest.importorskip("onnx")
numpy_helper = pytest.importorskip("onnx.numpy_helper")
pytest.importorskip("onnxscript")
onnxruntime = pytest.importorskip("onnxruntime")

from adaslim_hf.cli_export import main as export_main
from adaslim_hf.export import (
    RouterExport,
    StaticExport,
    bottleneck_frames,
    check_onnx,
    export_onnx,
    export_router_onnx,
    padded_length,
)

torch.set_num_threads(2)
TOLERANCE = 1e-4
# lengths other than the traced one (1 s): one sample, shorter than a bottleneck frame, odd, longer
LENGTHS = (1, 37, 4001, 23456)

SMALL = {"hidden": 8, "depth": 2, "resample": 2}  # causal, grouped-GRU bottleneck: the paper's layout, small
# non-causal: bidirectional LSTM bottleneck with its Linear, bidirectional router; no GLU; 3 frames per decision
VARIANT = {"hidden": 8, "depth": 2, "resample": 2, "causal": False, "bottleneck": "lstm", "glu": False, "router_stride": 3}


def make_model(**overrides):
    torch.manual_seed(0)
    return randomize_width_gains(AdaSlimModel(AdaSlimConfig(**overrides)).eval())


def run_onnx(path, noisy: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input_values": noisy.numpy()})[0])


def random_batch(batch, length, seed=1):
    return torch.randn(batch, length, generator=torch.Generator().manual_seed(seed)) * 0.1


@pytest.fixture(scope="module")
def small_model():
    return make_model(**SMALL)


@pytest.fixture(scope="module")
def saved_model(small_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    small_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(small_model, saved_model, tmp_path_factory):
    """Every factor and the router through the library, except factor 1.0, written by the CLI subcommand."""
    folder = tmp_path_factory.mktemp("onnx")
    paths = {u: export_onnx(small_model, folder / f"u{u}.onnx", u) for u in small_model.config.utilization_factors[:-1]}
    paths["router"] = export_router_onnx(small_model, folder / "router.onnx")
    paths[1.0] = folder / "cli" / "u1.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert export_main(["export", str(saved_model), "--utilization", "1", str(paths[1.0])]) == 0
    paths["cli_output"] = printed.getvalue()
    return paths


def test_symbolic_length_arithmetic_matches_the_config():
    for overrides in (SMALL, VARIANT, {}):
        config = AdaSlimConfig(**overrides)
        for length in (1, 2, 5, 37, 255, 256, 257, 4001, 23456):
            frames = bottleneck_frames(config, length)
            assert frames == config.frames_per_layer(length)[-1]
            assert padded_length(config, frames) == config.valid_length(length)
            assert bottleneck_frames(config, torch.tensor(length)).item() == frames


@pytest.mark.parametrize("overrides", [SMALL, VARIANT, {"hidden": 8, "depth": 4},
                                       {"hidden": 8, "depth": 4, "width_gains": True}],
                         ids=["small", "variant", "depth4", "width_gains"])
def test_export_modules_equal_the_model_in_torch(overrides):
    """The loop-free modules that are traced compute what the model's inference paths compute."""
    model = make_model(**overrides)
    noisy = random_batch(3, 4001)
    with torch.no_grad():
        for utilization in model.config.utilization_factors:
            expected = model(noisy, utilization=utilization).enhanced_values
            torch.testing.assert_close(StaticExport(model, utilization)(noisy), expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(RouterExport(model)(noisy), model(noisy).router_logits, atol=1e-6, rtol=0)


def test_every_static_factor_matches_torch_in_onnxruntime(small_model, exported, record_property):
    worst = {}
    for utilization in small_model.config.utilization_factors:
        diffs = []
        for batch, length in zip((1, 3, 2, 1), LENGTHS):
            noisy = random_batch(batch, length, seed=length)
            with torch.no_grad():
                expected = small_model(noisy, utilization=utilization).enhanced_values
            got = run_onnx(exported[utilization], noisy)
            assert got.shape == expected.shape
            diffs.append(float((got - expected).abs().max()))
        worst[utilization] = max(diffs)
        assert worst[utilization] <= TOLERANCE, (utilization, diffs)
    record_property("max_abs_diff_per_factor", worst)
    print("ONNX vs torch, max |diff| per factor:", worst)


def test_router_logits_and_choices_match_torch_in_onnxruntime(small_model, exported, record_property):
    diffs = []
    for batch, length in zip((1, 3, 2, 1), LENGTHS):
        noisy = random_batch(batch, length, seed=length)
        with torch.no_grad():
            out = small_model(noisy)
        logits = run_onnx(exported["router"], noisy)
        assert logits.shape == (batch, small_model.config.num_router_frames(length), small_model.config.num_factors)
        diffs.append(float((logits - out.router_logits).abs().max()))
        assert torch.equal(logits.argmax(dim=-1), out.choice)
    assert max(diffs) <= TOLERANCE, diffs
    record_property("max_abs_diff_router", max(diffs))
    print("ONNX vs torch, router logits max |diff|:", max(diffs))


def test_graphs_are_valid_onnx_with_dynamic_axes_native_recurrences_and_metadata(small_model, exported):
    graph = onnx.load(str(exported[0.25]))
    onnx.checker.check_model(graph, full_check=True)
    axes = [[d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            for value in (graph.graph.input[0], graph.graph.output[0])]
    assert axes == [["batch", "samples"], ["batch", "samples"]]
    ops = {node.op_type for node in graph.graph.node}
    assert "GRU" in ops and "Loop" not in ops and "Scan" not in ops  # native recurrences, no unrolled frames
    metadata = {p.key: json.loads(p.value) for p in graph.metadata_props}
    assert metadata["adaslim.graph"] == "static" and metadata["adaslim.utilization"] == 0.25
    assert metadata["adaslim.sample_rate"] == 16000
    weights = {u: sum(numpy_helper.to_array(t).nbytes for t in onnx.load(str(exported[u])).graph.initializer)
               for u in small_model.config.utilization_factors}
    assert weights[0.125] < weights[0.25] < weights[0.5] < weights[1.0]  # each graph holds only its sliced weights
    router = onnx.load(str(exported["router"]))
    assert {p.key: json.loads(p.value) for p in router.metadata_props}["adaslim.graph"] == "router"
    assert "GRU" in {node.op_type for node in router.graph.node}


def test_non_causal_lstm_variant_with_router_stride(tmp_path):
    """Bidirectional LSTM bottleneck (with its Linear) and bidirectional router, no GLU, 3 frames per decision."""
    model = make_model(**VARIANT)
    factor = model.config.utilization_factors[1]
    assert check_onnx(model, export_onnx(model, tmp_path / "s.onnx", factor), factor, lengths=(1, 4001, 9999)) <= TOLERANCE
    assert check_onnx(model, export_router_onnx(model, tmp_path / "r.onnx"), None, lengths=(1, 4001, 9999)) <= TOLERANCE


def test_fixed_shape_export(small_model, tmp_path):
    path = export_router_onnx(small_model, tmp_path / "fixed.onnx", dynamic=False, example_samples=3000)
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3000]
    assert check_onnx(small_model, path, None, lengths=(3000,), batch=1) <= TOLERANCE


def test_unknown_factor_is_refused_before_tracing(small_model, tmp_path):
    with pytest.raises(ValueError, match="configured factors"):
        export_onnx(small_model, tmp_path / "x.onnx", 0.3)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_reports_what_it_wrote_and_its_check(exported):
    """The fixture's CLI run (factor 1.0; its graph is compared with torch above) says what it wrote."""
    lines = exported["cli_output"].splitlines()
    assert lines[0].startswith(f"wrote {exported[1.0]}") and "static u=1" in lines[0] and "MACs/sample" in lines[0]
    assert "onnxruntime vs torch: max |diff|" in lines[1]


def test_cli_refuses_bad_arguments_with_clear_messages(saved_model, tmp_path, capsys):
    folder = saved_model
    assert export_main(["export", str(folder), "--utilization", "0.3", str(tmp_path / "x.onnx")]) == 2
    assert "not one of the model's factors [0.125, 0.25, 0.5, 1.0]" in capsys.readouterr().err
    assert export_main(["export", str(tmp_path / "missing"), "--router", str(tmp_path / "x.onnx")]) == 2
    assert "cannot load the model" in capsys.readouterr().err
    assert export_main(["export", str(folder), "--router", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert export_main(["export", str(folder), "--utilization", "all", str(blocker)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert export_main(["export", str(folder), "--router", str(blocker / "x.onnx")]) == 2  # parent is a file
    assert "cannot write to" in capsys.readouterr().err
    assert export_main(["export", str(folder), "--router", "--fixed-samples", "0", str(tmp_path / "x.onnx")]) == 2
    assert not list(tmp_path.glob("*.onnx"))
    from adaslim_hf.cli import main as adaslim_main  # the `adaslim` console script dispatches to the same code

    assert adaslim_main(["export", str(folder), "--utilization", "0.3", str(tmp_path / "x.onnx")]) == 2
    assert "not one of the model's factors" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: one of --utilization / --router is required
        export_main(["export", str(folder), str(tmp_path / "x.onnx")])
