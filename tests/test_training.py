"""Training with Accelerate: stage 1, stage 2 (joint and router-only) and static runs save loadable models,
a tiny run overfits, a run killed with SIGKILL resumes at its last checkpoint with the same data order,
two processes train together (gloo), and bad inputs fail before any step.

Audio: the real fixtures (tests/fixtures, LibriVox speech + vinyl hiss) cut into a tiny VoiceBank-layout
folder; models: AdaSlimConfig(hidden=8, depth=3).
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from adaslim_hf import AdaSlimConfig, AdaSlimModel
from adaslim_hf.training import (
    CHECKPOINT_MARKER,
    NonFiniteLossError,
    TrainingObjective,
    backward_terms,
    calibrate_router,
    gumbel_noise_scale_at,
    list_checkpoints,
    load_settings,
    slimmable_loss,
    train,
)
from adaslim_hf.training.settings import TrainingSettings

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
SMOKE = REPO / "configs" / "smoke.yaml"
SAMPLE_RATE = 16000

torch.set_num_threads(1)


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO),
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env.pop("WORLD_SIZE", None)
    return env


def write_voicebank(root: Path, train_speakers=("p230", "p231", "p232"), valid_speakers=("p226", "p287"),
                    test_speakers=("p257",), per_speaker=2, seconds=1.0, nan_clean: str | None = None) -> Path:
    """A tiny VoiceBank-layout folder cut from the real fixtures: each pair is a different 1 s window of
    the speech, mixed with a different window of the hiss at a different SNR."""
    speech, rate = sf.read(FIXTURES / "speech.wav", dtype="float32")
    noise, _ = sf.read(FIXTURES / "noise.wav", dtype="float32")
    assert rate == SAMPLE_RATE
    length = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    folders = {"train": ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav"),
               "test": ("clean_testset_wav", "noisy_testset_wav")}
    for split, speakers in (("train", train_speakers + valid_speakers), ("test", test_speakers)):
        clean_dir, noisy_dir = (root / name for name in folders[split])
        clean_dir.mkdir(parents=True, exist_ok=True)
        noisy_dir.mkdir(parents=True, exist_ok=True)
        for speaker in speakers:
            for utterance in range(1, per_speaker + 1):
                start = int(rng.integers(0, len(speech) - length))
                clean = speech[start : start + length].copy()
                offset = int(rng.integers(0, len(noise) - length))
                hiss = noise[offset : offset + length]
                snr = rng.uniform(0, 10)
                gain = np.sqrt((clean**2).mean() / (hiss**2).mean() / 10 ** (snr / 10))
                noisy = clean + gain * hiss
                name = f"{speaker}_{utterance:03d}"
                if name == nan_clean:
                    clean[100:200] = np.nan
                sf.write(clean_dir / f"{name}.wav", clean, SAMPLE_RATE, subtype="FLOAT")
                sf.write(noisy_dir / f"{name}.wav", noisy, SAMPLE_RATE, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def voicebank(tmp_path_factory) -> Path:
    return write_voicebank(tmp_path_factory.mktemp("voicebank"))


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each in-process run builds its own Accelerator: start every test from a clean accelerate state."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def smoke(voicebank: Path, output_dir: Path, **overrides):
    return load_settings(SMOKE, {"data_dir": str(voicebank), "output_dir": str(output_dir), **overrides})


def read_steps(output_dir: Path) -> dict[int, dict]:
    """steps.jsonl -> {step: the last record written for it} (a resumed run rewrites the steps it redoes)."""
    records = {}
    for line in (output_dir / "steps.jsonl").read_text().splitlines():
        record = json.loads(line)
        records[record["step"]] = record
    return records


# ---- the loss pieces ------------------------------------------------------------------------------------


def test_stage1_terms_sum_to_the_slimmable_loss_and_its_gradient():
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).train()
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    total, terms = slimmable_loss(model, noisy, clean)
    assert sorted(terms) == model.config.utilization_factors
    total.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    objective = TrainingObjective(model, "1")
    logs = backward_terms(objective, objective.terms(), noisy, clean)
    assert logs["loss"] == pytest.approx(float(total.detach()), rel=1e-5)
    for name, grad in expected.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in model.router.parameters())  # stage 1 never calls the router


def test_stage1_shared_work_gradients_equal_the_per_factor_reference(monkeypatch):
    """A stage-1 step computes the batch's width-independent part (normalised, up-sampled input, the target's
    spectra) once and shares it across the factors' forwards: its gradients equal those of one complete,
    independent forward and backward per factor (the reference), with and without a padding mask."""
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).train()
    noisy, clean = torch.randn(3, 5000) * 0.1, torch.randn(3, 5000) * 0.1
    mask = (torch.arange(5000)[None, :] < torch.tensor([5000, 4100, 2700])[:, None]).long()
    calls = []
    share_inputs = model.share_inputs
    monkeypatch.setattr(model, "share_inputs", lambda *args: calls.append(1) or share_inputs(*args))
    for padding_mask in (None, mask):
        model.zero_grad(set_to_none=True)
        reference_losses = {}
        for factor in model.config.utilization_factors:  # reference: every factor on its own
            out = model(noisy, padding_mask=padding_mask, utilization=factor, clean_values=clean)
            out.loss.backward()
            reference_losses[f"se_loss/static {factor:g}"] = float(out.se_loss.detach())
        reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        calls.clear()
        objective = TrainingObjective(model, "1")
        logs = backward_terms(objective, objective.terms(), noisy, clean, padding_mask)
        assert len(calls) == 1  # once per step, not once per factor
        assert {k: logs[k] for k in reference_losses} == pytest.approx(reference_losses, rel=1e-6)
        assert reference.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
        for name, grad in reference.items():
            torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-5, atol=1e-5)
        backward_terms(objective, objective.terms(), noisy.clone(), clean, padding_mask)  # a new batch
        noisy.mul_(1.0)  # modified in place: its version changed
        backward_terms(objective, objective.terms(), noisy, clean, padding_mask)
        assert len(calls) == 3
    shared = share_inputs(noisy, mask, clean)
    with pytest.raises(ValueError, match="shared_inputs"):
        model(noisy, padding_mask=None, utilization=0.25, clean_values=clean, shared_inputs=shared)
    with pytest.raises(ValueError, match="shared_inputs"):
        model(noisy.clone(), padding_mask=mask, utilization=0.25, clean_values=clean, shared_inputs=shared)


def test_router_calibration_meets_the_target_at_inference():
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, target_utilization=0.3)).eval()
    with torch.no_grad():
        model.router.projection.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 2.0]))  # a router that overspends
    batches = [{"input_values": torch.randn(4, 8000) * 0.1} for _ in range(3)]
    with torch.no_grad():
        before = torch.cat([model(b["input_values"]).mean_utilization for b in batches]).mean()
    result = calibrate_router(model, batches)
    assert result["utilization_before"] == pytest.approx(float(before), abs=1e-6) and before > 0.5
    assert result["utilization_after"] == pytest.approx(0.3, abs=0.03)
    with torch.no_grad():  # the shift lives in the model now: plain inference decides the calibrated way
        after = torch.cat([model(b["input_values"]).mean_utilization for b in batches]).mean()
    assert float(after) == pytest.approx(result["utilization_after"], abs=0.01)  # frames at the boundary may flip


def test_router_calibration_keeps_every_factor_above_the_share_floor():
    """A router that never picks the widest factor: with min_factor_share the calibration lifts that factor to
    its share of the frames and still meets the target; without it the widest factor stays unused."""
    torch.manual_seed(0)
    batches = [{"input_values": torch.randn(4, 8000) * 0.1} for _ in range(3)]
    def overspending_router(share: float) -> AdaSlimModel:
        model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, target_utilization=0.3, min_factor_share=share)).eval()
        with torch.no_grad():
            model.router.projection.bias.copy_(torch.tensor([0.0, 0.5, 1.0, -4.0]))  # 1.0 never wins, 0.5 mostly
        return model

    results = {}
    for share in (0.0, 0.08):
        model = overspending_router(share)
        result = results[share] = calibrate_router(model, batches)
        assert result["min_share"] == share and result["shares_before"][-1] == 0.0
        assert result["utilization_after"] == pytest.approx(0.3, abs=0.03)
        with torch.no_grad():  # the offsets live in the model: plain inference decides the calibrated way
            choice = torch.cat([model(b["input_values"]).choice.flatten() for b in batches])
        shares = torch.bincount(choice, minlength=4) / choice.numel()
        torch.testing.assert_close(shares, torch.tensor(result["shares_after"]), atol=0.01, rtol=0)
    assert results[0.0]["shares_after"][-1] < 0.01 and results[0.0]["bonus"] == [0.0] * 4
    assert min(results[0.08]["shares_after"]) >= 0.08 and results[0.08]["floor_met"]
    unfinished = calibrate_router(overspending_router(0.08), batches, rounds=0)  # no round to lift the widest factor: reported
    assert not unfinished["floor_met"] and unfinished["shares_after"][-1] < 0.08
    assert results[0.08]["bonus"][-1] > 0


def test_router_calibration_leaves_a_target_below_the_smallest_factor_alone():
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, target_utilization=0.1)).eval()
    bias = model.router.projection.bias.detach().clone()
    result = calibrate_router(model, [{"input_values": torch.randn(2, 8000) * 0.1}])
    assert "skipped" in result and result["lambda"] == 0.0
    assert result["utilization_after"] == result["utilization_before"]
    assert torch.equal(model.router.projection.bias, bias)


def test_gumbel_noise_decays_to_the_inference_choice():
    """Stage 2 lowers the router's Gumbel noise linearly to none: at full scale the choice is
    F.gumbel_softmax's (same random numbers), at none it is the arg max inference takes, and the loss still
    reaches the router through the softmax."""
    from torch.nn import functional as F

    from adaslim_hf.modeling_adaslim import straight_through_gumbel

    assert [gumbel_noise_scale_at(step, 4) for step in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert gumbel_noise_scale_at(10_000, 0) == 1.0  # 0 = no decay
    logits = torch.randn(3, 50, 4)
    torch.manual_seed(1)
    reference = F.gumbel_softmax(logits, tau=0.7, hard=True)
    torch.manual_seed(1)
    assert torch.equal(straight_through_gumbel(logits, 0.7, 1.0), reference)
    with pytest.raises(ValueError, match="gumbel_noise_scale must be >= 0"):
        straight_through_gumbel(logits, 1.0, -0.5)

    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, target_utilization=0.3)).train()
    noisy, clean = torch.randn(2, 8000) * 0.1, torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        inference = model.eval()(noisy).choice
    model.train()
    objective = TrainingObjective(model, "2")
    noiseless = [model(noisy, clean_values=clean, gumbel_noise_scale=0.0).choice for _ in range(2)]
    assert all(torch.equal(choice, inference) for choice in noiseless)
    assert not torch.equal(model(noisy, clean_values=clean).choice, inference)  # full noise: other choices
    logs = backward_terms(objective, objective.terms(), noisy, clean, gumbel_noise_scale=0.0)
    assert {"efficiency_loss", "balance_loss", "fraction/1"} <= logs.keys() and "share_loss" not in logs
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.router.parameters())
    model.config.min_factor_share = 0.05
    assert "share_loss" in backward_terms(objective, objective.terms(), noisy, clean, gumbel_noise_scale=0.0)


def test_stage2_slimmable_weight_adds_stage1_terms_scaled_by_the_weight():
    """slimmable_weight w: a stage-2 step is the router's term plus w x L_SE at every factor (sliced), so the
    gradient is the router term's plus w x stage 1's; every width's weights get a gradient from every step."""
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).train()
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    weight = 0.5
    objective = TrainingObjective(model, "2", slimmable_weight=weight)
    factors = [float(u) for u in model.config.utilization_factors]
    assert objective.terms() == [*factors[::-1], None]
    torch.manual_seed(1)
    logs = backward_terms(objective, objective.terms(), noisy, clean)
    combined = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the router's term with the same Gumbel noise
    backward_terms(TrainingObjective(model, "2"), [None], noisy, clean)
    router_term = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    total, _ = slimmable_loss(model, noisy, clean)
    (weight * total).backward()
    slim = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in combined.items():
        expected = router_term.get(name, 0) + slim.get(name, 0)
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    assert {f"se_loss/static {u:g}" for u in factors} <= logs.keys() and "efficiency_loss" in logs
    with pytest.raises(ValueError, match="stage '2'"):
        TrainingObjective(model, "1", slimmable_weight=0.5)
    with pytest.raises(ValueError, match="stage-2 setting"):
        load_settings(SMOKE, {"slimmable_weight": 0.5})  # the smoke config is stage 1


@pytest.mark.parametrize("stage, kwargs, slim_bottleneck", [
    ("1", {}, False), ("1", {"distillation_weight": 0.5, "narrow_per_step": 1}, False), ("1", {}, True),
    ("2", {}, False), ("2", {"slimmable_weight": 0.25, "distillation_weight": 0.5, "narrow_per_step": 1}, False),
    ("2", {"slimmable_weight": 0.25}, True),
])
def test_last_term_gives_every_trainable_parameter_a_gradient(stage, kwargs, slim_bottleneck):
    """Under DistributedDataParallel only a step's last term is synchronised (the others run in no_sync), and
    DDP fails unless that one forward gives every trainable parameter a gradient: the widest factor's leaves
    the per-width gains out and stage 2's slimmable terms the router, so a narrow term or the routed one comes
    last. A slimmed bottleneck's held groups still get a gradient in training (their update gate is forced)."""
    from adaslim_hf.training.model import freeze_router

    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, width_gains=True, slim_bottleneck=slim_bottleneck)).train()
    if stage == "1":
        freeze_router(model)
    objective = TrainingObjective(model, stage, **kwargs)
    terms = objective.terms(torch.Generator().manual_seed(0))
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    backward_terms(objective, terms[:-1], noisy, clean)  # the teacher of a distilled last term
    model.zero_grad(set_to_none=True)
    backward_terms(objective, terms[-1:], noisy, clean)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"stage {stage} terms {terms}: the last term leaves {missing} without a gradient"


def test_factor_weights_scale_each_factor_term():
    """factor_weights w: the stage-1 step's loss and gradient are those of sum_u w_u L_SE(u)."""
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).train()
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    weights = [0.5, 0.0, 1.0, 2.0]
    objective = TrainingObjective(model, "1", factor_weights=weights)
    logs = backward_terms(objective, objective.terms(), noisy, clean)
    weighted = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    _, terms = slimmable_loss(model, noisy, clean)
    expected = sum(w * terms[u] for w, u in zip(weights, model.config.utilization_factors))
    expected.backward()
    assert logs["loss"] == pytest.approx(float(expected.detach()), rel=1e-5)
    for name, grad in weighted.items():
        torch.testing.assert_close(grad, model.get_parameter(name).grad, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match=r"factor_weights must be 4 weights >= 0"):
        TrainingObjective(model, "1", factor_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"setting `factor_weights` expects list\[float\]"):
        load_settings(SMOKE, {"factor_weights": ["1", "heavy", "1", "1"]})
    with pytest.raises(ValueError, match=r"`factor_weights` weighs the factor terms"):
        load_settings(SMOKE, {"stage": "static", "static_utilization": 1.0, "factor_weights": ["1"] * 4})


def test_narrow_factors_per_step_draws_narrow_terms_and_keeps_the_expected_gradient():
    """narrow_per_step k: a micro-batch's terms are the widest factor and k narrower ones drawn by the
    generator (widest first under distillation); each drawn narrow term is scaled by (narrow factors / k), so
    the gradient averaged over every draw equals the one of every factor."""
    from itertools import combinations

    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).train()
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    factors = [float(u) for u in model.config.utilization_factors]
    narrow = factors[:-1]
    objective = TrainingObjective(model, "1", narrow_per_step=1)
    drawn = [objective.terms(torch.Generator().manual_seed(seed)) for seed in range(40)]
    assert all(len(terms) == 2 and terms[0] == 1.0 and terms[1] in narrow for terms in drawn)  # widest first
    assert {terms[1] for terms in drawn} == set(narrow)  # every narrow factor gets its turn
    assert objective.terms() == factors[::-1]  # without a generator: every factor (names, checks)
    distilled = TrainingObjective(model, "1", distillation_weight=0.5, narrow_per_step=2)
    assert all(terms == sorted(terms, reverse=True) and len(terms) == 3
               for terms in (distilled.terms(torch.Generator().manual_seed(s)) for s in range(10)))
    # the mean over every draw of 2 of the 3 narrow factors is the gradient of all of them
    objective = TrainingObjective(model, "1", narrow_per_step=2)
    draws = [[1.0, *pair] for pair in combinations(narrow, 2)]
    mean = {}
    for terms in draws:
        model.zero_grad(set_to_none=True)
        backward_terms(objective, terms, noisy, clean)
        for name, param in model.named_parameters():
            if param.grad is not None:
                mean[name] = mean.get(name, 0) + param.grad / len(draws)
    model.zero_grad(set_to_none=True)
    backward_terms(TrainingObjective(model, "1"), factors, noisy, clean)
    for name, grad in mean.items():
        torch.testing.assert_close(grad, model.get_parameter(name).grad, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match=r"narrow_per_step must be 0 \(every factor\) or 1 to 3"):
        TrainingObjective(model, "1", narrow_per_step=4)
    with pytest.raises(ValueError, match="narrow_per_step"):
        TrainingObjective(model, "static", 1.0, narrow_per_step=1)
    with pytest.raises(ValueError, match=r"`narrow_factors_per_step` draws among the factor terms"):
        load_settings(SMOKE, {"stage": "static", "static_utilization": 1.0, "narrow_factors_per_step": 1})
    with pytest.raises(ValueError, match=r"`narrow_factors_per_step` draws among the factor terms"):
        load_settings(SMOKE, {"narrow_factors_per_step": -1})


def test_width_gains_train_in_their_own_optimizer_group():
    """model.width_gains: the gains get gain_learning_rate (default learning_rate) and no weight decay; the
    router and the rest keep their groups."""
    from adaslim_hf.training.loop import make_optimizer

    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, width_gains=True))
    gains = {id(block.width_gain) for block in [*model.encoder, *model.decoder]}
    settings = load_settings(SMOKE, {"gain_learning_rate": 0.01, "weight_decay": 0.1})
    groups = make_optimizer(model, settings).param_groups
    gain_groups = [group for group in groups if {id(p) for p in group["params"]} & gains]
    assert len(gain_groups) == 1 and {id(p) for p in gain_groups[0]["params"]} == gains
    assert gain_groups[0]["lr"] == 0.01 and gain_groups[0]["weight_decay"] == 0.0
    others = [group for group in groups if group is not gain_groups[0]]
    assert all(group["lr"] == settings.learning_rate and group["weight_decay"] == 0.1 for group in others)
    assert sum(len(group["params"]) for group in groups) == len(list(model.parameters()))
    defaults = make_optimizer(model, load_settings(SMOKE, {})).param_groups
    assert {group["lr"] for group in defaults} == {load_settings(SMOKE, {}).learning_rate}


def test_in_place_distillation_mixes_each_narrower_factor_with_the_widest_output():
    """distillation_weight d: the factor terms run widest first; the widest's gradient is its plain L_SE's,
    each narrower factor's is that of (1 - d) L_SE(u, clean) + d L_SE(u, widest output detached), with the
    model's whole L_SE (here L_Cmp and L_Sup in place of the log-magnitude term) against the teacher too."""
    from adaslim_hf.losses import enhancement_losses

    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, stft_mag_factor=0.0, compressed_weight=1.0,
                                       suppression_weight=0.5)).train()
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    weight = 0.5
    objective = TrainingObjective(model, "1", distillation_weight=weight)
    assert objective.terms() == [1.0, 0.5, 0.25, 0.125]
    logs = backward_terms(objective, objective.terms(), noisy, clean)
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    config = model.config
    teacher = model(noisy, utilization=1.0).enhanced_values.detach()
    total = model(noisy, utilization=1.0, clean_values=clean).loss
    for factor in (0.5, 0.25, 0.125):
        out = model(noisy, utilization=factor, clean_values=clean)
        distill = enhancement_losses(config, out.enhanced_values, teacher, noisy)[0]
        total = total + (1 - weight) * out.loss + weight * distill
    total.backward()
    for name, grad in got.items():
        torch.testing.assert_close(grad, dict(model.named_parameters())[name].grad, rtol=1e-4, atol=1e-6)
    assert logs["loss"] == pytest.approx(float(total.detach()), rel=1e-5)
    assert {"distillation_loss/static 0.5", "distillation_loss/static 0.125"} <= logs.keys()
    assert "distillation_loss/static 1" not in logs
    with pytest.raises(RuntimeError, match="widest factor's term of the same batch first"):
        TrainingObjective(model, "1", distillation_weight=weight)(noisy, clean, term=0.5)
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        TrainingObjective(model, "1", distillation_weight=1.5)
    with pytest.raises(ValueError, match="needs the factor terms"):
        load_settings(SMOKE, {"stage": "static", "static_utilization": 0.5, "distillation_weight": 0.5})
    run = load_settings(SMOKE, {"distillation_weight": 0.5})  # stage 1 through the loop's settings
    assert run.distillation_weight == 0.5


# ---- validation: the evaluator's names and scoring -------------------------------------------------------


def test_validation_names_settings_as_the_evaluator_and_scores_items_with_its_helper():
    """training.validation keys its results with adaslim_hf.evaluation.setting_name ("static 0.25",
    "dynamic", "noisy"), scores each item with evaluation.score_items (the batched, padded forward gives each
    item what it gets alone), and parses 'auto' with configuration_adaslim.parse_utilization."""
    from adaslim_hf.evaluation import score_item, setting_name
    from adaslim_hf.training import evaluate, parse_utilizations, score

    speech, _ = sf.read(FIXTURES / "speech.wav", dtype="float32")
    noise, _ = sf.read(FIXTURES / "noise.wav", dtype="float32")
    dataset = [{"noisy": speech[start : start + n] + 0.3 * noise[:n], "clean": speech[start : start + n]}
               for start, n in ((0, 16000), (20000, 12000))]  # two lengths: one batch with padding
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).eval()
    results = evaluate(model, dataset, [0.25, None], batch_size=2, include_noisy=True)
    assert list(results) == ["noisy", setting_name(0.25), setting_name(None)] == ["noisy", "static 0.25", "dynamic"]
    assert results["static 0.25"]["items"] == 2 and results["static 0.25"]["mean_utilization"] == pytest.approx(0.25)
    alone = []
    for item in dataset:
        with torch.no_grad():
            enhanced = model(torch.from_numpy(item["noisy"])[None], utilization=0.25).enhanced_values[0].numpy()
        alone.append(score_item(enhanced, item["clean"], SAMPLE_RATE, ("pesq", "stoi", "si_sdr")))
    for key in ("pesq", "stoi", "si_sdr"):
        assert results["static 0.25"][key] == pytest.approx(np.mean([s[key] for s in alone]), rel=1e-3, abs=1e-3)
    # best-model selection: the mean over the model's settings, the noisy input left out
    assert score(results, "si_sdr") == pytest.approx((results["static 0.25"]["si_sdr"]
                                                      + results["dynamic"]["si_sdr"]) / 2)

    config = model.config
    assert parse_utilizations(["AUTO", " auto ", "0.25", 1], "1", config) == [None, None, 0.25, 1.0]
    assert parse_utilizations(None, "2", config) == [None] and parse_utilizations(None, "1", config) == [
        0.125, 0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"validation_utilizations entries must be 'auto' or factors "
                                         r"\[0\.125, 0\.25, 0\.5, 1\.0\], got 'half'\."):
        parse_utilizations(["half"], "1", config)
    with pytest.raises(ValueError, match="0.3 is not one of the configured factors"):
        parse_utilizations(["0.3"], "1", config)


# ---- stage 1, stage 2, static: few steps, loadable folders -------------------------------------------------


def test_stage1_then_stage2_then_router_only_save_loadable_models(voicebank, tmp_path):
    stage1 = train(smoke(voicebank, tmp_path / "stage1", max_train_steps=4))
    model = AdaSlimModel.from_pretrained(stage1)
    assert model.config.hidden == 8
    # its router was never trained: utilization=None (the pipeline's "auto") runs the full width instead
    assert model.config.default_utilization == 1.0
    noisy = torch.randn(1, 4000)
    with torch.no_grad():
        auto, full = model(noisy), model(noisy, utilization=1.0)
    assert auto.router_logits is None and torch.equal(auto.enhanced_values, full.enhanced_values)
    report = json.loads((stage1 / "evaluation.json").read_text())
    # the settings carry scripts/evaluate.py's names (adaslim_hf.evaluation.setting_name)
    assert {"noisy", "static 0.125", "static 0.25", "static 0.5", "static 1"} <= set(report["settings"])
    for name in ("static 0.125", "static 1"):
        assert {"pesq", "stoi", "si_sdr", "mean_utilization"} <= set(report["settings"][name])
    assert report["settings"]["static 0.25"]["mean_utilization"] == pytest.approx(0.25)
    # ... and its row keys: the counts of scored and inverted items as scripts/evaluate.py writes them
    row = report["settings"]["static 1"]
    assert row["items_inverted"] in range(row["items"] + 1) and row["pesq_items_scored"] <= row["items"]
    assert "inverted" not in row and "loss_items_scored" not in row and "speech_gain_items_scored" not in row
    assert math.isfinite(row["speech_gain"])  # the level the level-blind metrics miss
    assert len(list_checkpoints(tmp_path / "stage1")) == 2  # steps 2 and 4 of checkpointing_steps=2
    logs = list((tmp_path / "stage1" / "logs").rglob("events.out.tfevents.*"))
    assert logs, "accelerator.log wrote no tensorboard events"

    stage2 = train(smoke(voicebank, tmp_path / "stage2", stage="2", init_from=str(stage1),
                         target_utilization=0.5, max_train_steps=3, calibrate_router=8,
                         model={"min_factor_share": 0.05}))
    tuned = AdaSlimModel.from_pretrained(stage2)
    assert tuned.config.target_utilization == 0.5 and tuned.config.min_factor_share == 0.05
    assert tuned.config.default_utilization is None  # stage 2 trained the router: None routes again
    with torch.no_grad():
        assert tuned(noisy).router_logits is not None
    report = json.loads((stage2 / "evaluation.json").read_text())
    assert 0.125 <= report["settings"]["dynamic"]["mean_utilization"] <= 1.0
    calibration = report["router_calibration"]
    assert calibration["target"] == 0.5 and calibration["min_share"] == 0.05
    assert min(calibration["shares_after"]) >= 0.05 and 0.125 <= calibration["validation_utilization"] <= 1.0
    steps = read_steps(tmp_path / "stage2")
    assert sorted(steps) == [1, 2, 3]

    before = AdaSlimModel.from_pretrained(stage1).state_dict()
    router_only = train(smoke(voicebank, tmp_path / "router", stage="2", init_from=str(stage1),
                              train_router_only=True, max_train_steps=2, final_model="last",
                              learning_rate=0.05, model={"routed_loss": "log"}))
    assert AdaSlimModel.from_pretrained(router_only).config.routed_loss == "log"
    assert all(math.isfinite(step["loss"]) for step in read_steps(tmp_path / "router").values())
    after = AdaSlimModel.from_pretrained(router_only).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("router.") for k in changed)


def test_one_command_runs_stage1_then_stage2_with_per_stage_settings(voicebank, tmp_path):
    settings = smoke(voicebank, tmp_path / "pipeline", stage="1+2", target_utilization=0.5, validation_steps=0,
                     report_to="none", max_train_steps=1,
                     per_stage={"1": {"learning_rate": 0.01}, "2": {"max_train_steps": 2, "learning_rate": 0.002}})
    assert settings.max_train_steps == 1  # the command line beats per_stage: stage 2 keeps 1 step here
    final = train(settings)
    assert final == tmp_path / "pipeline" / "stage2" / "model"
    first = json.loads((tmp_path / "pipeline" / "stage1" / "training_settings.json").read_text())
    second = json.loads((tmp_path / "pipeline" / "stage2" / "training_settings.json").read_text())
    assert (first["stage"], first["learning_rate"], first["max_train_steps"]) == ("1", 0.01, 1)
    assert (second["stage"], second["learning_rate"], second["max_train_steps"]) == ("2", 0.002, 1)
    assert second["init_from"] == str(tmp_path / "pipeline" / "stage1" / "model")
    assert AdaSlimModel.from_pretrained(final).config.target_utilization == 0.5
    # running it again without resuming would overwrite the run: refused before any step
    with pytest.raises(ValueError, match="holds an earlier run"):
        train(settings)


@pytest.mark.parametrize("stage", ["1", "2", "static"])
def test_bf16_mixed_precision_trains_every_stage_on_the_cpu(voicebank, tmp_path, stage, monkeypatch):
    """accelerate's mixed_precision="bf16" on the CPU (torch.autocast around the objective): every stage
    takes its steps with finite losses, keeps float32 weights and saves a model that loads; the step's
    losses are within 2% of the same step in float32 from the same start (the bf16 bound of the model's
    output is 1%: tests/test_modeling.py), and differ from it (bf16 ran, also on a CPU that emulates it)."""
    from accelerate.state import AcceleratorState

    monkeypatch.setattr("adaslim_hf.training.loop.cpu_bf16_is_native", lambda: True)
    extra = {"static_utilization": 0.25} if stage == "static" else {}
    runs = {}
    for precision in ("no", "bf16"):
        AcceleratorState._reset_state(True)  # one Accelerator per run, each with its own precision
        folder = train(smoke(voicebank, tmp_path / precision, stage=stage, max_train_steps=2,
                             mixed_precision=precision, validation_steps=0, **extra))
        model = AdaSlimModel.from_pretrained(folder)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        runs[precision] = read_steps(tmp_path / precision)
    assert sorted(runs["bf16"]) == [1, 2]
    first = {precision: steps[1]["loss"] for precision, steps in runs.items()}
    assert math.isfinite(first["bf16"]) and first["bf16"] == pytest.approx(first["no"], rel=0.02)
    assert first["bf16"] != first["no"]


@pytest.mark.parametrize("native", [True, False, None])
def test_bf16_falls_back_to_float32_only_where_the_cpu_emulates_it(native, monkeypatch):
    """mixed_precision="bf16" on a CPU without AVX-512 BF16 or AMX (native False) trains in float32, with a
    warning that says why; where bf16 is native, or torch cannot tell (None), the settings are kept."""
    from adaslim_hf.training.loop import precision_this_machine_runs

    monkeypatch.setattr("adaslim_hf.training.loop.cpu_bf16_is_native", lambda: native)
    settings = TrainingSettings(output_dir="unused", mixed_precision="bf16", cpu=True)
    if native is False:
        with pytest.warns(UserWarning, match="emulated"):
            kept = precision_this_machine_runs(settings)
        assert kept.mixed_precision == "no" and settings.mixed_precision == "bf16"
    else:
        assert precision_this_machine_runs(settings) is settings
    assert precision_this_machine_runs(replace(settings, mixed_precision="no")).mixed_precision == "no"


def test_final_evaluation_on_validation_reuses_the_last_steps_validation(voicebank, tmp_path, monkeypatch):
    """Without a test split the final report is on the validation split: the settings validated at the last
    step, with the weights kept, are not enhanced a second time; only the noisy input is scored."""
    from adaslim_hf.training import loop

    calls, real_evaluate = [], loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda model, data, utilizations, **kw: calls.append(
        (list(utilizations), kw.get("include_noisy", False))) or real_evaluate(model, data, utilizations, **kw))
    output_dir = tmp_path / "reuse"
    model_dir = train(smoke(voicebank, output_dir, evaluate_test=False, max_train_steps=2, validation_steps=2,
                            report_to="none"))
    validated, final = calls[0], calls[-1]
    assert len(calls) == 2 and validated == ([0.125, 0.25, 0.5, 1.0], False) and final == ([], True)
    report = json.loads((model_dir / "evaluation.json").read_text())
    assert report["evaluated_on"] == "validation"
    assert list(report["settings"]) == ["noisy", "static 0.125", "static 0.25", "static 0.5", "static 1"]
    assert all(report["settings"][name]["items"] == 2 for name in report["settings"])


def test_static_baseline_and_checkpoint_folder_as_starting_point(voicebank, tmp_path):
    first = train(smoke(voicebank, tmp_path / "static", stage="static", static_utilization=0.25,
                        max_train_steps=2, validation_steps=0))
    report = json.loads((first / "evaluation.json").read_text())
    assert set(report["settings"]) == {"noisy", "static 0.25"}
    assert AdaSlimModel.from_pretrained(first).config.default_utilization == 0.25  # its one trained width
    checkpoint = list_checkpoints(tmp_path / "static")[-1]
    again = train(smoke(voicebank, tmp_path / "from_checkpoint", init_from=str(checkpoint), max_train_steps=1,
                        validation_steps=0))
    assert (again / "model.safetensors").is_file()


def test_dns_stream_mixes_on_the_fly_with_new_orders_per_epoch(voicebank, tmp_path, monkeypatch):
    speech = tmp_path / "speech"
    speech.mkdir()
    for path in sorted((voicebank / "clean_trainset_28spk_wav").glob("p23*.wav"))[:3]:
        (speech / path.name).write_bytes(path.read_bytes())
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "hiss.wav").write_bytes((FIXTURES / "noise.wav").read_bytes())
    overrides = {"dataset": "dns", "data_dir": str(speech), "noise_dir": str(noise), "valid_dir": str(voicebank),
                 "test_dir": str(voicebank), "validation_steps": 0, "report_to": "none"}
    with pytest.raises(ValueError, match="streams without a length.*set max_train_steps"):
        train(load_settings(SMOKE, {**overrides, "output_dir": str(tmp_path / "no_steps"), "max_train_steps": None}))
    from adaslim_hf.data import dns

    streams, real_stream = [], dns.dns_training_stream
    monkeypatch.setattr(dns, "dns_training_stream", lambda *a, **kw: streams.append(kw) or real_stream(*a, **kw))
    # 3 files x 3 segments of 0.5 s every 0.25 s, batch 4: 2 steps per epoch; speed factors as the CLI gives them
    model_dir = train(load_settings(SMOKE, {**overrides, "output_dir": str(tmp_path / "dns"), "max_train_steps": 4,
                                            "speed_factors": ["0.9", "0.95"]}))
    assert streams and all(kw["speed_factors"] == ["0.9", "0.95"] for kw in streams)
    steps = read_steps(tmp_path / "dns")
    assert [steps[s]["epoch"] for s in (1, 2, 3, 4)] == [0, 0, 1, 1]
    assert [steps[1]["ids"], steps[2]["ids"]] != [steps[3]["ids"], steps[4]["ids"]]
    report = json.loads((model_dir / "evaluation.json").read_text())
    assert report["evaluated_on"] == "test" and report["settings"]["static 1"]["items"] == 2


# ---- learning ---------------------------------------------------------------------------------------------


def test_loss_decreases_on_a_tiny_overfit(voicebank, tmp_path):
    settings = smoke(voicebank, tmp_path / "overfit", stage="static", static_utilization=1.0, max_train_steps=40,
                     learning_rate=0.003, remix=False, train_batch_size=2, segment=0.5, segment_stride=0.5,
                     validation_steps=0, checkpointing_steps=1000, report_to="none")
    train(settings)
    losses = [r["loss"] for _, r in sorted(read_steps(tmp_path / "overfit").items())]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.75 * first, (first, last)


# ---- resume after SIGKILL ---------------------------------------------------------------------------------


def _run_script(args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_resume_after_sigkill_continues_at_the_checkpoint_with_the_same_data_order(voicebank, tmp_path):
    common = ["--config", str(SMOKE), "--data_dir", str(voicebank), "--max_train_steps", "9",
              "--checkpointing_steps", "3", "--validation_steps", "0", "--report_to", "none",
              "--bandmask", "0.1", "--shift", "400"]  # augmentations on: their randomness must repeat too
    reference = _run_script([*common, "--output_dir", str(tmp_path / "reference")])
    output, _ = reference.communicate(timeout=120)
    assert reference.returncode == 0, output
    expected = read_steps(tmp_path / "reference")

    killed_dir = tmp_path / "killed"
    killed = _run_script([*common, "--output_dir", str(killed_dir)])
    deadline = time.time() + 120
    while not list_checkpoints(killed_dir) and time.time() < deadline and killed.poll() is None:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved = list_checkpoints(killed_dir)
    assert saved, "no checkpoint before the kill"
    resumed_from = json.loads((saved[-1] / CHECKPOINT_MARKER).read_text())["global_step"]
    assert not list(saved[-1].glob("custom_checkpoint_*"))  # the progress lives in the JSON marker only
    assert resumed_from < 9 and not (killed_dir / "model").exists()

    resumed = _run_script([*common, "--output_dir", str(killed_dir), "--resume_from_checkpoint", "latest"])
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert f"at step {resumed_from} " in output
    steps = read_steps(killed_dir)
    assert sorted(steps) == list(range(1, 10))
    for step in range(1, 10):  # same batches (data order) and the same losses (augmentations, weights)
        assert steps[step]["ids"] == expected[step]["ids"], step
        assert steps[step]["loss"] == pytest.approx(expected[step]["loss"], rel=1e-5, abs=1e-7), step
    assert (killed_dir / "model" / "model.safetensors").is_file()


FORMAT_FIXTURE = FIXTURES / "run_format_2026-12-05"


def test_resume_from_a_checkpoint_in_the_on_disk_format_of_2026_12_05(voicebank, tmp_path):
    """Runs started before training became a package resume with today's code: the fixture is the output
    folder of a smoke run (4 steps, a checkpoint every 2) written by commit f166f09, cut back to its first
    checkpoint (tests/fixtures/README.md). Resumed with the same flags, steps 3 and 4 take the same batches
    and give the same losses as that run did uninterrupted (reference_steps.jsonl)."""
    import shutil

    output_dir = tmp_path / "old_run"
    shutil.copytree(FORMAT_FIXTURE, output_dir, ignore=shutil.ignore_patterns("reference_steps.jsonl",
                                                                              "evaluation.json"))
    (output_dir / "training_settings.json").unlink()  # rewritten by the resumed run
    # accelerate loads its custom-state pickle with weights_only=False; the progress comes from the JSON marker,
    # so a pickle that raises when unpickled (here 1 / 0) goes unread
    import operator
    import pickle

    class Payload:
        def __reduce__(self):
            return operator.truediv, (1, 0)

    (output_dir / "checkpoints" / "checkpoint_0" / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Payload()))
    assert [p.name for p in list_checkpoints(output_dir)] == ["checkpoint_0"]
    settings = smoke(voicebank, output_dir, max_train_steps=4, checkpointing_steps=2, validation_steps=0,
                     report_to="none", bandmask=0.1, shift=400, resume_from_checkpoint="latest")
    model_dir = train(settings)
    expected = {json.loads(line)["step"]: json.loads(line)
                for line in (FORMAT_FIXTURE / "reference_steps.jsonl").read_text().splitlines()}
    steps = read_steps(output_dir)
    assert sorted(steps) == [1, 2, 3, 4]
    for step in (3, 4):
        assert steps[step]["ids"] == expected[step]["ids"], step
        assert steps[step]["epoch"] == expected[step]["epoch"] and steps[step]["batch"] == expected[step]["batch"]
        assert steps[step]["loss"] == pytest.approx(expected[step]["loss"], rel=1e-5, abs=1e-7), step
    # the numbering goes on after the old checkpoint, and the limit of 2 keeps the newest two
    assert [p.name for p in list_checkpoints(output_dir)] == ["checkpoint_0", "checkpoint_1"]
    assert json.loads((output_dir / "checkpoints" / "checkpoint_1" / CHECKPOINT_MARKER).read_text())["global_step"] == 4
    assert AdaSlimModel.from_pretrained(model_dir).config.hidden == 8


# ---- two processes ----------------------------------------------------------------------------------------


def test_two_processes_train_both_stages_together_with_gloo(voicebank, tmp_path):
    """Each process draws its own narrow width, and stage 2 has its slimmable terms: DDP must still pair the
    processes' gradients, with every parameter's (the per-width gains, the router) in the synchronised term."""
    output_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", "29517", str(REPO / "scripts" / "train.py"), "--config", str(SMOKE),
               "--data_dir", str(voicebank), "--output_dir", str(output_dir), "--stage", "1+2",
               "--max_train_steps", "2", "--checkpointing_steps", "2", "--validation_steps", "0",
               "--narrow_factors_per_step", "1", "--slimmable_weight", "0.25", "--model", "width_gains=true"]
    result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=170, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # stage 1, then stage 2 in the same group
    assert output.count("(2 process(es), distributed: multi_cpu, gloo; mixed precision: no)") == 2
    for stage in ("stage1", "stage2"):
        assert sorted(read_steps(output_dir / stage)) == [1, 2]
        assert (output_dir / stage / "checkpoints" / "checkpoint_0" / "random_states_1.pkl").is_file()
    assert AdaSlimModel.from_pretrained(output_dir / "stage2" / "model").config.hidden == 8


def test_whole_updates_end_the_epoch_at_the_first_update_a_process_cannot_fill():
    from adaslim_hf.training.data import whole_updates

    # one process: whole updates of 2 only, the last micro-batch of 5 unused
    assert list(whole_updates(range(5), 2, lambda full: full)) == [0, 1, 2, 3]
    # this process holds 4 whole updates of 3, another process only one: the collective's second answer is "no"
    answers, asked = iter([True, False]), []
    every_process_has = lambda full: asked.append(full) or next(answers)
    assert list(whole_updates(range(12), 3, every_process_has)) == [0, 1, 2]
    assert asked == [True, True]  # asked once per update, saying what this process holds


def test_two_processes_cross_stream_epochs_whose_shares_differ(voicebank, tmp_path):
    """One clean file per process, 1 s and 2 s: 3 and 6 segments of 0.5 s, micro-batches of 1. Each process's
    epoch ends at the first update (2 micro-batches) that one of them cannot fill, so 3 updates cross 2 epoch
    ends; a process that ran on alone left the other waiting in a collective (2026-12-06)."""
    speech, rate = sf.read(FIXTURES / "speech.wav", dtype="float32")
    folder = tmp_path / "speech"
    folder.mkdir()
    sf.write(folder / "a.wav", speech[:rate], rate)
    sf.write(folder / "b.wav", speech[rate : 3 * rate], rate)
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "hiss.wav").write_bytes((FIXTURES / "noise.wav").read_bytes())
    output_dir = tmp_path / "ddp-stream"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", "29519", str(REPO / "scripts" / "train.py"), "--config", str(SMOKE),
               "--dataset", "dns", "--data_dir", str(folder), "--noise_dir", str(noise),
               "--valid_dir", str(voicebank), "--no_evaluate_test", "--stage", "static", "--static_utilization", "1.0",
               "--train_batch_size", "1", "--gradient_accumulation_steps", "2", "--shuffle_buffer", "4",
               "--output_dir", str(output_dir), "--max_train_steps", "3", "--checkpointing_steps", "3",
               "--validation_steps", "0", "--report_to", "none"]
    result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=170, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    steps = read_steps(output_dir)
    assert [steps[s]["epoch"] for s in (1, 2, 3)] == [0, 1, 2]
    assert all(steps[s]["batch"] == 1 for s in (1, 2, 3))  # each epoch: one update of micro-batches 0 and 1
    assert AdaSlimModel.from_pretrained(output_dir / "model").config.hidden == 8


# ---- bad input: a clear error before any step ---------------------------------------------------------------


def _no_step_taken(output_dir: Path):
    assert not (output_dir / "steps.jsonl").exists()
    assert not list_checkpoints(output_dir, complete_only=False)


def test_unknown_config_keys_are_refused(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("stage: '1'\nlearnig_rate: 0.001\n")
    with pytest.raises(ValueError, match=r"unknown setting.*learnig_rate.*did you mean learning_rate"):
        load_settings(config)
    config.write_text("model:\n  hiden: 8\n")
    with pytest.raises(ValueError, match=r"unknown model setting.*hiden.*did you mean hidden"):
        load_settings(config)
    with pytest.raises(ValueError, match=r"`train_batch_size` expects int"):
        load_settings(None, {"train_batch_size": "many"})
    with pytest.raises(ValueError, match=r"`speed_factors` applies to the datasets mixed on the fly"):
        load_settings(None, {"dataset": "voicebank", "speed_factors": [0.9, 1.1]})


def test_script_reports_bad_input_before_any_step(voicebank, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", REPO / "scripts" / "train.py")
    train_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_script)
    output_dir = tmp_path / "bad"
    args = train_script.parse_args(["--config", str(SMOKE), "--data_dir", str(voicebank), "--output_dir",
                                    str(output_dir), "--target_utilization", "1.5"])
    assert train_script.main(args) == 2
    _no_step_taken(output_dir)
    args = train_script.parse_args(["--config", str(SMOKE), "--data_dir", str(voicebank), "--output_dir",
                                    str(output_dir), "--model", "efficiency_weight=many"])
    assert train_script.main(args) == 2  # the config's type check, reported as an error, not a traceback
    assert "efficiency_weight" in capsys.readouterr().err
    _no_step_taken(output_dir)


def test_target_utilization_outside_the_factors(voicebank, tmp_path):
    with pytest.raises(ValueError, match=r"target_utilization"):
        train(smoke(voicebank, tmp_path / "target", stage="2", target_utilization=0.0))
    _no_step_taken(tmp_path / "target")


def test_checkpoint_of_another_architecture(voicebank, tmp_path):
    foreign = tmp_path / "wav2vec2"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model_type": "wav2vec2", "hidden_size": 16}))
    with pytest.raises(ValueError, match=r"'wav2vec2' model, expected an 'adaslim' model"):
        train(smoke(voicebank, tmp_path / "foreign", init_from=str(foreign)))
    _no_step_taken(tmp_path / "foreign")

    wider = tmp_path / "wider"
    AdaSlimModel(AdaSlimConfig(hidden=16, depth=3)).save_pretrained(wider)
    with pytest.raises(ValueError, match=r"hidden=16 \(asked 8\)"):
        train(smoke(voicebank, tmp_path / "wider_run", init_from=str(wider)))

    # resuming a run with a model of another width
    train(smoke(voicebank, tmp_path / "run", max_train_steps=2, validation_steps=0, report_to="none"))
    with pytest.raises(ValueError, match=r"another architecture \(hidden: checkpoint 8, this run 16\)"):
        train(smoke(voicebank, tmp_path / "run", model={"hidden": 16}, resume_from_checkpoint="latest"))


def test_start_from_a_denoiser_checkpoint_and_refuse_one_that_does_not_fit(voicebank, tmp_path):
    demucs = pytest.importorskip("denoiser.demucs", reason="pip install --no-deps denoiser==0.1.5")
    torch.manual_seed(0)
    reference = demucs.Demucs(hidden=8, depth=3).eval()
    checkpoint = tmp_path / "tiny.th"
    torch.save(reference.state_dict(), checkpoint)
    model_dir = train(smoke(voicebank, tmp_path / "from_denoiser", init_from=str(checkpoint), max_train_steps=1,
                            validation_steps=0, report_to="none", learning_rate=1e-9, final_model="last"))
    converted = AdaSlimModel.from_pretrained(model_dir).eval()
    assert converted.config.bottleneck == "lstm"
    noisy = torch.randn(1, 1, 4000) * 0.1
    with torch.no_grad():  # one step at lr 1e-9 leaves denoiser's function at utilization 1.0
        torch.testing.assert_close(converted(noisy, utilization=1.0).enhanced_values, reference(noisy),
                                   atol=1e-4, rtol=1e-3)
    with pytest.raises(ValueError, match=r"does not fit the architecture.*has shape \[8, 1, 8\], the config "
                                         r"expects \[16, 1, 8\]"):
        train(smoke(voicebank, tmp_path / "misfit", init_from=str(checkpoint), model={"hidden": 16}))
    _no_step_taken(tmp_path / "misfit")


def test_empty_dataset(tmp_path):
    empty = tmp_path / "empty"
    for name in ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav", "clean_testset_wav", "noisy_testset_wav"):
        (empty / name).mkdir(parents=True)
    with pytest.raises(ValueError):
        train(load_settings(SMOKE, {"data_dir": str(empty), "output_dir": str(tmp_path / "out")}))
    _no_step_taken(tmp_path / "out")


def test_nan_loss_stops_naming_step_and_batch_and_keeps_the_last_good_checkpoint(voicebank, tmp_path, monkeypatch):
    original = TrainingObjective.forward
    calls = []

    def poisoned(self, noisy, clean, padding_mask=None, term=None, **kwargs):
        outputs = original(self, noisy, clean, padding_mask, term, **kwargs)
        calls.append(term)
        if len(calls) == 4:  # static stage: one term per step, so step 4
            outputs["loss"] = outputs["loss"] * float("nan")
        return outputs

    monkeypatch.setattr(TrainingObjective, "forward", poisoned)
    output_dir = tmp_path / "nan"
    settings = smoke(voicebank, output_dir, stage="static", static_utilization=0.5, max_train_steps=6,
                     checkpointing_steps=1, checkpoints_total_limit=None, validation_steps=0, report_to="none")
    with pytest.raises(NonFiniteLossError, match=r"the loss is \[nan\] .* at step 4 \(epoch 0, batch 3 of the "
                                                 r"epoch, items \[p2\d\d_00\d@\d+") as error:
        train(settings)
    last = list_checkpoints(output_dir)[-1]
    assert f"the last good checkpoint is {last} (step 3)" in str(error.value)
    assert len(list_checkpoints(output_dir)) == 3 and not (output_dir / "model").exists()
    assert sorted(read_steps(output_dir)) == [1, 2, 3]


def test_non_finite_audio_is_refused_naming_the_file(tmp_path):
    data = write_voicebank(tmp_path / "nan_data", nan_clean="p230_001")
    with pytest.raises(ValueError, match=r"p230_001.*non-finite"):
        train(load_settings(SMOKE, {"data_dir": str(data), "output_dir": str(tmp_path / "out"),
                                    "report_to": "none"}))
