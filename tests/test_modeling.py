"""AdaSlimModel: the three execution paths agree, padded batches equal single items, bad input is refused,
the router learns through the straight-through path, and DEMUCS initialisation is kept."""

import math
import os

import pytest
import torch
from helpers import randomize_width_gains

from adaslim_hf import AdaSlimConfig, AdaSlimModel, bottleneck, execution, products, resample
from adaslim_hf.bottleneck import GroupedGRU
from adaslim_hf.router import DiagonalGRU, diagonal_gru_steps

if "OMP_NUM_THREADS" not in os.environ:  # a shared machine sets it (one thread beside a training job)
    torch.set_num_threads(2)

TINY_CONFIGS = {
    "causal": {"hidden": 8, "depth": 4},
    "router_stride_3": {"hidden": 8, "depth": 4, "router_stride": 3},
    "non_causal": {"hidden": 8, "depth": 3, "causal": False, "stride": 2, "resample": 2},
    "no_glu_lstm": {"hidden": 8, "depth": 3, "glu": False, "bottleneck": "lstm"},
    "width_gains": {"hidden": 8, "depth": 4, "width_gains": True},
    "slim_bottleneck": {"hidden": 8, "depth": 4, "slim_bottleneck": True},
}


def make_model(name, seed=0):
    torch.manual_seed(seed)
    return randomize_width_gains(AdaSlimModel(AdaSlimConfig(**TINY_CONFIGS[name])).eval())  # every path applies them alike


def padded_batch(lengths, seed=0):
    generator = torch.Generator().manual_seed(seed)
    noisy = torch.randn(len(lengths), max(lengths), generator=generator) * 0.3
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()
    return noisy * mask, mask


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_three_paths_agree_on_random_choices_odd_lengths_and_padding(name):
    model = make_model(name)
    config = model.config
    lengths = [4099, 2711, 1]
    noisy, mask = padded_batch(lengths)
    choice = torch.randint(0, config.num_factors, (3, config.num_router_frames(max(lengths))))
    with torch.no_grad():
        masked = model(noisy, padding_mask=mask, utilization=choice, execution="masked").enhanced_values
        grouped = model(noisy, padding_mask=mask, utilization=choice, execution="grouped").enhanced_values
        assert (masked - grouped).abs().max() <= 1e-5
        for index, factor in enumerate(config.utilization_factors):
            same = torch.full_like(choice, index)
            sliced = model(noisy, padding_mask=mask, utilization=factor).enhanced_values
            for execution in ("masked", "grouped"):
                other = model(noisy, padding_mask=mask, utilization=same, execution=execution).enhanced_values
                assert (sliced - other).abs().max() <= 1e-5, (factor, execution)


@pytest.mark.parametrize("small_tiles", [False, True])
@pytest.mark.parametrize("runs_as_spans", [True, False])
@pytest.mark.parametrize("name", ["causal", "no_glu_lstm"])
def test_inference_fast_paths_equal_the_autograd_paths(name, runs_as_spans, small_tiles, monkeypatch):
    """Without autograd, blocks write GLU halves into their outputs, add transposed-conv taps in place and
    the GRU steps through preallocated buffers; with autograd the plain paths run. Same outputs, with the
    grouped path's runs computed as spans (threshold 0) or gathered by factor (threshold never met), and
    with one tile per span or the smallest tiles (256 frames: products carried across many tile edges)."""
    monkeypatch.setattr(execution, "RUN_MIN_ELEMENTS", 0 if runs_as_spans else float("inf"))
    if small_tiles:
        monkeypatch.setattr(execution, "TILE_FLOATS", 1)
    model = make_model(name)
    config = model.config
    lengths = [4099, 2711]
    noisy, mask = padded_batch(lengths, seed=2)
    frames = config.num_router_frames(max(lengths))
    every_frame = torch.randint(0, config.num_factors, (2, frames), generator=torch.Generator().manual_seed(3))
    runs = torch.arange(frames)[None, :].expand(2, -1) * config.num_factors // frames  # a few long runs
    for utilization in [*config.utilization_factors, every_frame, runs, None]:
        kwargs = {"padding_mask": mask, "utilization": utilization}
        reference = model(noisy, **kwargs).enhanced_values  # autograd on: reference paths
        with torch.no_grad():
            fast = model(noisy, **kwargs).enhanced_values
        assert (reference - fast).abs().max() <= 1e-5, utilization


def test_grouped_gru_inference_recurrence_equals_the_autograd_one():
    torch.manual_seed(0)
    gru = GroupedGRU(channels=24, groups=3, layers=1, bidirectional=False)
    x, state = torch.randn(2, 37, 24), torch.randn(3, 2, 8)
    for initial in (None, state):
        reference, reference_state = gru(x, initial)
        with torch.no_grad():
            fast, fast_state = gru(x, initial)
        assert (reference - fast).abs().max() <= 1e-5 and (reference_state - fast_state).abs().max() <= 1e-5
    with torch.no_grad():
        empty, kept = gru(x[:, :0], state)
    assert empty.shape == (2, 0, 24) and torch.equal(kept, state)
    assert fast_state.data_ptr() != fast.data_ptr()  # the returned state does not alias the output
    # the TorchScript-compiled recurrence computes exactly what the Python function does
    args = torch.randn(37, 3, 2, 24), torch.randn(37, 3, 2, 8), torch.randn(3, 2, 8), torch.randn(3, 8, 24)
    with torch.no_grad():
        assert torch.equal(bottleneck.compiled_gru_steps()(*args), bottleneck.grouped_gru_steps(*args))


def _six_operation_gru(gru: GroupedGRU, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
    """The inference recurrence as it was before issue 27 (six operations and six views per step): the hidden
    product with b_hn as its bias, then r, z = sigmoid(i_rz + hg_rz) and n = tanh(i_n + r * hg_n)."""
    width = gru.group_width
    w_ih, w_hh, b_ih, b_hh = gru._stacked_weights()
    input_bias = b_ih.clone()
    input_bias[..., : 2 * width] += b_hh[..., : 2 * width]
    hidden_bias = torch.zeros_like(b_hh)
    hidden_bias[..., 2 * width :] = b_hh[..., 2 * width :]
    input_gates = gru._input_gates(x, w_ih, input_bias).transpose(0, 1).contiguous()  # [N, G, B, 3g]
    hidden = x.new_zeros(gru.groups, x.shape[0], width) if state is None else state
    y = hidden.new_empty(input_gates.shape[0], gru.groups, x.shape[0], width)
    hidden_gates = hidden.new_empty(gru.groups, x.shape[0], 3 * width)
    reset_update = hidden.new_empty(gru.groups, x.shape[0], 2 * width)
    candidate = hidden.new_empty(gru.groups, x.shape[0], width)
    for t in range(input_gates.shape[0]):
        step_gates = input_gates[t]
        torch.baddbmm(hidden_bias, hidden, w_hh.contiguous(), out=hidden_gates)
        torch.add(step_gates[:, :, : 2 * width], hidden_gates[:, :, : 2 * width], out=reset_update).sigmoid_()
        torch.addcmul(step_gates[:, :, 2 * width :], reset_update[:, :, :width], hidden_gates[:, :, 2 * width :],
                      out=candidate).tanh_()
        hidden = torch.lerp(candidate, hidden, reset_update[:, :, width:], out=y[t])
    return gru._by_frame(y)


@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_grouped_gru_inference_recurrence_equals_the_six_operation_one(scale):
    """The five-operation step (the gates' inputs as the hidden product's bias, the candidate as a lerp)
    gives what the six-operation step gave, to 1e-5, over 625 frames (10 s) at the paper's size (measured:
    at most 4e-7, also with the packaged model's weights)."""
    torch.manual_seed(0)
    gru = GroupedGRU(channels=512, groups=4, layers=1, bidirectional=False)
    x, state = torch.randn(2, 625, 512) * scale, torch.randn(4, 2, 128) * 0.5
    with torch.no_grad():
        for initial in (None, state):
            assert (gru(x, initial)[0] - _six_operation_gru(gru, x, initial)).abs().max() <= 1e-5


@pytest.mark.parametrize("frames, scale", [(23, 1.0), (625, 3.0)])
@pytest.mark.parametrize("reverse", [False, True])
def test_router_gru_inference_recurrence_equals_the_autograd_one(reverse, frames, scale):
    """The five-operation inference step (compiled) against the plain equations of the autograd path, also over
    625 frames (10 s) of large inputs. (Measured against the six-operation step it replaced: at most 3e-7 apart
    over 625 frames, random and packaged weights.)"""
    torch.manual_seed(0)
    gru = DiagonalGRU(input_size=5, hidden_size=8, reverse=reverse)
    x, state = torch.randn(2, frames, 5) * scale, torch.randn(2, 8)
    for initial in (None, state):
        reference = gru(x, initial)
        with torch.no_grad():
            fast = gru(x, initial)
        assert fast.shape == reference.shape and (reference - fast).abs().max() <= 1e-5
    with torch.no_grad():
        assert gru(x[:, :0], state).shape == (2, 0, 8)
        # the TorchScript-compiled recurrence computes exactly what the Python function does
        args = torch.randn(frames, 2, 3, 8), torch.randn(frames, 2, 1, 8), torch.randn(2, 1, 8), torch.randn(3, 8)
        assert torch.equal(products.compiled(diagonal_gru_steps)(*args, reverse), diagonal_gru_steps(*args, reverse))


@pytest.mark.parametrize("name", ["causal", "non_causal"])
def test_padded_batch_items_equal_single_items(name):
    model = make_model(name)
    lengths = [5003, 3001, 17]
    noisy, mask = padded_batch(lengths, seed=1)
    choice = torch.randint(0, model.config.num_factors, (3, model.config.num_router_frames(max(lengths))))
    with torch.no_grad():
        batch = model(noisy, padding_mask=mask, utilization=choice)
        routed = model(noisy, padding_mask=mask)
        for item, length in enumerate(lengths):
            frames = model.config.num_router_frames(length)
            single = model(noisy[item : item + 1, :length], utilization=choice[item : item + 1, :frames])
            diff = (single.enhanced_values[0] - batch.enhanced_values[item, :length]).abs().max()
            assert diff <= 1e-5
            assert torch.allclose(single.macs, batch.macs[item : item + 1])
            assert batch.enhanced_values[item, length:].abs().max() == 0 if length < max(lengths) else True
            alone = model(noisy[item : item + 1, :length])
            assert torch.equal(alone.choice[0], routed.choice[item, :frames])
            assert (routed.choice[item, frames:] == -1).all()


def test_width_gains_scale_only_the_narrow_widths_and_start_as_the_model_without(tmp_path):
    """width_gains: at 1 (their start) every width equals the model without them; changed, they change the
    narrow widths' outputs and never the full width's, a narrow term's gradient reaches only its own row,
    and a run may switch them on when it starts from a model without them (training.load_model)."""
    from adaslim_hf.training.model import load_model

    plain, gained = make_model("causal"), AdaSlimModel(AdaSlimConfig(**TINY_CONFIGS["width_gains"])).eval()
    gained.load_state_dict(plain.state_dict(), strict=False)  # the same weights, gains at 1
    noisy, _ = padded_batch([3001], seed=4)
    factors = plain.config.utilization_factors
    with torch.no_grad():
        for utilization in [*factors, None]:
            torch.testing.assert_close(gained(noisy, utilization=utilization).enhanced_values,
                                       plain(noisy, utilization=utilization).enhanced_values, rtol=0, atol=0)
        randomize_width_gains(gained, 3.0, 5.0)  # large: a new model's outputs are mostly its biases
        torch.testing.assert_close(gained(noisy, utilization=1.0).enhanced_values,
                                   plain(noisy, utilization=1.0).enhanced_values, rtol=0, atol=0)
        for utilization in factors[:-1]:
            reference = plain(noisy, utilization=utilization).enhanced_values
            difference = gained(noisy, utilization=utilization).enhanced_values - reference
            assert difference.abs().max() > 0.01 * reference.abs().max(), utilization
    assert [tuple(block.width_gain.shape) for block in gained.encoder] == [(3, 16), (3, 32), (3, 64), (3, 128)]
    assert [tuple(block.width_gain.shape) for block in gained.decoder] == [(3, 32), (3, 16), (3, 8), (3, 1)]
    gained.train()
    gained(noisy, utilization=0.25, clean_values=noisy).loss.backward()
    for block in [*gained.encoder, *gained.decoder]:
        rows_reached = block.width_gain.grad.abs().sum(dim=1) > 0
        assert rows_reached.tolist() == [False, True, False]  # 0.25 is the second factor
    plain.save_pretrained(tmp_path / "plain")
    switched = load_model(str(tmp_path / "plain"), {"width_gains": True})
    assert switched.config.width_gains and all(
        bool((block.width_gain == 1).all()) for block in [*switched.encoder, *switched.decoder])
    with pytest.raises(ValueError, match="architecture fields cannot change"):
        gained.save_pretrained(tmp_path / "gained")
        load_model(str(tmp_path / "gained"), {"width_gains": False})


def test_output_fields_and_shapes():
    model = make_model("causal")
    config = model.config
    noisy = torch.randn(2, 3000) * 0.1
    with torch.no_grad():
        out = model(noisy)
    frames = config.num_router_frames(3000)
    assert out.enhanced_values.shape == (2, 3000)
    assert out.choice.shape == (2, frames) and out.choice.dtype == torch.long
    assert out.router_logits.shape == (2, frames, config.num_factors)
    assert torch.equal(out.choice, out.router_logits.argmax(-1))
    factors = torch.tensor(config.utilization_factors)
    assert torch.allclose(out.utilization_per_frame, factors[out.choice])
    assert torch.allclose(out.mean_utilization, out.utilization_per_frame.mean(1))
    assert out.macs.shape == (2,) and (out.macs > 0).all()
    with torch.no_grad():
        channel_first = model(noisy[:, None], utilization=0.5)
    assert channel_first.enhanced_values.shape == (2, 1, 3000)
    assert channel_first.router_logits is None
    assert (channel_first.mean_utilization == 0.5).all()
    single_sample = model(torch.tensor([[0.3]]))
    assert single_sample.enhanced_values.shape == (1, 1) and torch.isfinite(single_sample.enhanced_values).all()
    as_tuple = model(noisy, utilization=1.0, return_dict=False)
    assert torch.equal(as_tuple[0], model(noisy, utilization=1.0).enhanced_values)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m(torch.randn(3000)), "shape"),
        (lambda m: m(torch.randn(1, 2, 3000)), "shape"),
        (lambda m: m(torch.zeros(1, 0)), "empty"),
        (lambda m: m(torch.tensor([[0.0, float("nan"), 0.1]])), "NaN"),
        (lambda m: m(torch.tensor([[0.0, float("inf"), 0.1]])), "NaN or Inf"),
        (lambda m: m(torch.zeros(1, 3000, dtype=torch.int16)), "floating-point"),
        (lambda m: m(torch.randn(1, 3000), utilization=0.3), "not one of the configured factors"),
        (lambda m: m(torch.randn(1, 3000), utilization=torch.zeros(1, 2, dtype=torch.long)), "router_frames"),
        (lambda m: m(torch.randn(1, 3000), utilization=torch.full((1, m.config.num_router_frames(3000)), 7)),
         "factor indices"),
        (lambda m: m(torch.randn(1, 3000), utilization=torch.zeros(1, m.config.num_router_frames(3000))),
         "integer tensor"),
        (lambda m: m(torch.randn(2, 300), padding_mask=torch.ones(2, 299)), "padding_mask"),
        (lambda m: m(torch.randn(1, 300), padding_mask=torch.tensor([[0, 1] * 150])), "one run"),
        (lambda m: m(torch.randn(1, 300), clean_values=torch.randn(1, 299)), "clean_values"),
        (lambda m: m(torch.randn(1, 300), execution="fast"), "execution"),
        (lambda m: m(torch.randn(1, 300), execution="sliced"), "static"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    model = make_model("causal")
    with pytest.raises(ValueError, match=message):
        call(model)


def test_invalid_config_values_are_refused():
    for kwargs, message in [
        ({"resample": 3}, "resample"),
        ({"kernel_size": 6, "stride": 4}, "multiple of `stride`"),
        ({"utilization_factors": (0.5, 0.25)}, "strictly increasing"),
        ({"utilization_factors": (0.0, 1.0)}, r"\(0, 1\]"),
        ({"hidden": 4}, "leaves no channel"),
        ({"bottleneck": "transformer"}, "'gru' or 'lstm'"),
        ({"bottleneck_groups": 3}, "must divide"),
        ({"target_utilization": 0.0}, "target_utilization"),
        ({"target_utilization": 0.4, "utilization_factors": (0.125, 0.25)}, "target_utilization"),
        ({"default_utilization": 0.3}, r"default_utilization.*one of the factors"),
    ]:
        with pytest.raises(ValueError, match=message):
            AdaSlimConfig(**kwargs)
    assert AdaSlimConfig(target_utilization=0.1).target_utilization == 0.1  # below the smallest factor: "cheapest"
    with pytest.raises(ValueError, match=r"min_factor_share.*\[0, 1/4\]"):
        AdaSlimConfig(min_factor_share=0.3)
    with pytest.raises(ValueError, match=r"allows mean utilizations in \[0.2625, 0.7875\]"):
        AdaSlimConfig(min_factor_share=0.1, target_utilization=0.15)  # 10% of frames at 1.0 alone costs 0.1
    assert AdaSlimConfig(min_factor_share=0.1, target_utilization=0.1).min_factor_share == 0.1  # "cheapest"


def test_whole_numbers_are_accepted_for_real_valued_fields():
    config = AdaSlimConfig(efficiency_weight=3, balance_weight=0, target_utilization=1)  # as YAML and users write them
    for name in ("efficiency_weight", "balance_weight", "target_utilization"):
        assert isinstance(getattr(config, name), float), name
    assert config.efficiency_weight == 3.0
    assert AdaSlimConfig.from_dict(config.to_dict()).efficiency_weight == 3.0


def test_training_reaches_the_router_and_explores_every_factor():
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=4)).train()
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    out = model(noisy, clean_values=clean)
    assert out.efficiency_loss is not None and out.balance_loss is not None
    expected = out.se_loss + model.config.efficiency_weight * out.efficiency_loss
    assert torch.allclose(out.loss, expected + model.config.balance_weight * out.balance_loss)
    assert out.share_loss is None  # min_factor_share 0: the paper's loss
    out.loss.backward()
    assert model.router.conv.weight.grad.abs().sum() > 0
    assert model.router.gru.recurrent_weight.grad.abs().sum() > 0
    floored = AdaSlimModel(AdaSlimConfig(hidden=8, depth=4, min_factor_share=0.1, share_weight=2.0,
                                       target_utilization=0.3)).train()
    floored.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    out = floored(noisy, clean_values=clean)
    assert out.share_loss is not None
    expected = out.se_loss + out.efficiency_loss + 0.1 * out.balance_loss + 2.0 * out.share_loss
    assert torch.allclose(out.loss, expected)
    seen = set()
    for _ in range(5):
        seen.update(model(noisy).choice.flatten().tolist())
    assert seen == set(range(model.config.num_factors))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(noisy).choice, model(noisy).choice)


def test_si_sdr_weight_adds_the_masked_si_sdr_loss_to_l_se():
    """si_sdr_weight w: L_SE gains w * (-SI-SDR) over each item's real samples; 0 (the default) leaves it alone."""
    from adaslim_hf.losses import si_sdr_loss

    torch.manual_seed(0)
    plain = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).eval()
    weighted = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, si_sdr_weight=0.05)).eval()
    weighted.load_state_dict(plain.state_dict())
    noisy, mask = padded_batch([6000, 4000])
    clean = noisy * 0.5 + 0.01 * torch.randn_like(noisy) * mask
    with torch.no_grad():
        base = plain(noisy, padding_mask=mask, utilization=0.5, clean_values=clean)
        out = weighted(noisy, padding_mask=mask, utilization=0.5, clean_values=clean)
    expected = base.se_loss + 0.05 * si_sdr_loss(out.enhanced_values, clean, padding_mask=mask)
    torch.testing.assert_close(out.se_loss, expected)
    torch.testing.assert_close(out.loss - out.se_loss, base.loss - base.se_loss)  # L_Pol unchanged
    with pytest.raises(ValueError, match="si_sdr_weight"):
        AdaSlimConfig(si_sdr_weight=-1)


def test_pause_weight_adds_the_pause_residual_loss_to_l_se():
    """pause_weight w: L_SE gains w * L_Pause of the output against the noisy input (20 ms frames at 16 kHz);
    0 (the default) leaves it alone."""
    from adaslim_hf.losses import pause_residual_loss

    torch.manual_seed(0)
    plain = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).eval()
    weighted = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3, pause_weight=0.5)).eval()
    weighted.load_state_dict(plain.state_dict())
    noisy, mask = padded_batch([6000, 4000])
    clean = noisy * 0.5 * mask
    clean[:, 3000:] = 0.0  # pauses
    with torch.no_grad():
        base = plain(noisy, padding_mask=mask, utilization=0.5, clean_values=clean)
        out = weighted(noisy, padding_mask=mask, utilization=0.5, clean_values=clean)
    residual = pause_residual_loss(out.enhanced_values, clean, noisy, frame=320, padding_mask=mask)
    assert float(residual) > 0
    torch.testing.assert_close(out.se_loss, base.se_loss + 0.5 * residual)
    with pytest.raises(ValueError, match="pause_weight"):
        AdaSlimConfig(pause_weight=-1)


def test_static_factor_training_uses_sliced_weights_only():
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).train()
    out = model(torch.randn(1, 3000) * 0.1, utilization=0.25, clean_values=torch.randn(1, 3000) * 0.1)
    out.loss.backward()
    width = model.config.slim_width(0, model.config.factor_index(0.25))
    grad = model.encoder[0].conv_in.weight.grad
    assert grad[:width].abs().sum() > 0 and grad[width:].abs().sum() == 0
    assert model.router.conv.weight.grad is None


def test_initialisation_is_demucs_not_normal_002():
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig())
    conv = model.encoder[3].conv_in  # fan_in = 128 * 8
    fan_in = conv.in_channels * conv.kernel_size[0]
    torch_default_std = 1 / math.sqrt(3 * fan_in)  # kaiming_uniform(a=sqrt(5)) bound 1/sqrt(fan_in)
    expected = math.sqrt(model.config.rescale * torch_default_std)  # std / sqrt(std / rescale)
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)
    gru = model.bottleneck.grus[0]
    bound = 1 / math.sqrt(gru.hidden_size)
    assert gru.weight_hh_l0.abs().max() <= bound and gru.weight_hh_l0.std() > 0.5 * bound / math.sqrt(3)


def test_training_paths_equal_conv_and_nn_gru_references():
    """With autograd, the encoder computes all taps as one product over the input's S-sample blocks and the
    grouped GRU runs a hand-written backward: outputs and gradients equal F.conv1d with the sliced weights and
    torch's nn.GRU per group."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).train()
    for layer, block in enumerate(model.encoder):
        for width in (2, block.channels):
            x = torch.randn(2, 4 * 37 + 4, block.in_channels, requires_grad=True)
            mask = (torch.rand(2, 37, 1) > 0.3).float()
            out = block.forward_all_frames(x, width, mask)  # [B, N, C]
            grad = torch.randn_like(out)
            weights = [block.conv_in.weight, block.conv_in.bias, block.conv_out.weight, block.conv_out.bias]
            ours = torch.autograd.grad(out, [x, *weights], grad)
            hidden = F.relu(F.conv1d(x.transpose(1, 2), weights[0][:width], weights[1][:width], block.stride))
            reference = F.glu(F.conv1d(hidden * mask.transpose(1, 2), weights[2][:, :width], weights[3]), dim=1)
            expected = torch.autograd.grad(reference, [x, *weights], grad.transpose(1, 2))
            torch.testing.assert_close(out, reference.transpose(1, 2), rtol=1e-5, atol=1e-5)
            for a, b in zip(ours, expected):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

    gru = GroupedGRU(channels=24, groups=3, layers=1, bidirectional=False)
    x, state = torch.randn(2, 37, 24, requires_grad=True), torch.randn(3, 2, 8, requires_grad=True)
    y, last = gru(x, state)
    grad_y, grad_last = torch.randn_like(y), torch.randn_like(last)
    inputs = [x, state, *gru.parameters()]
    ours = torch.autograd.grad([y, last], inputs, [grad_y, grad_last])
    parts = [g(part, h[None]) for g, part, h in zip(gru.grus, x.split(8, dim=-1), state)]
    reference, reference_last = torch.cat([p[0] for p in parts], -1), torch.cat([p[1] for p in parts])
    expected = torch.autograd.grad([reference, reference_last], inputs, [grad_y, grad_last])
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last, reference_last, rtol=1e-5, atol=1e-5)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    empty, kept = gru(x[:, :0], state)
    assert empty.shape == (2, 0, 24) and torch.equal(kept, state)


@pytest.mark.parametrize("name", ["causal", "non_causal"])
def test_shared_inputs_give_the_results_of_a_plain_forward(name):
    model = make_model(name).train()
    noisy, mask = padded_batch([4099, 2711], seed=4)
    clean = noisy * 0.5
    for padding_mask in (None, mask):
        shared = model.share_inputs(noisy, padding_mask, clean)
        for utilization in (*model.config.utilization_factors, None):
            torch.manual_seed(0)  # the router's Gumbel noise
            plain = model(noisy, padding_mask=padding_mask, utilization=utilization, clean_values=clean)
            torch.manual_seed(0)
            reused = model(noisy, padding_mask=padding_mask, utilization=utilization, clean_values=clean,
                           shared_inputs=shared)
            assert torch.equal(plain.enhanced_values, reused.enhanced_values)
            assert torch.equal(plain.loss, reused.loss)


def test_inference_mode_gives_the_no_grad_result():
    """Inputs made under torch.inference_mode keep no version counter; the model must still run on them."""
    model = make_model("causal")
    noisy, mask = padded_batch([4099, 2711], seed=5)
    with torch.no_grad():
        expected = [model(noisy, padding_mask=mask, utilization=u).enhanced_values for u in (None, 0.25)]
    with torch.inference_mode():
        inference_noisy, inference_mask = noisy.clone(), mask.clone()
        got = [model(inference_noisy, padding_mask=inference_mask, utilization=u).enhanced_values for u in (None, 0.25)]
        shared = model.share_inputs(inference_noisy, inference_mask)
        reused = model(inference_noisy, padding_mask=inference_mask, shared_inputs=shared).enhanced_values
    for want, have in zip(expected, got):
        assert torch.equal(want, have)
    assert torch.equal(expected[0], reused)


@pytest.mark.parametrize("delay", [0, 1, 2])
def test_router_decision_reads_the_hop_router_delay_before_the_frames_it_governs(delay):
    """Causal router: decision r depends only on input before (r + 1 - delay) * hop, and does depend on the hop
    (r - delay). With the default delay 1, every decision is known before its own hop begins."""
    torch.manual_seed(0)
    config = AdaSlimConfig(hidden=8, depth=4, router_delay=delay, normalize=False)
    model = AdaSlimModel(config).eval()
    hop, length = config.router_hop, 20 * config.router_hop + 37
    assert config.num_router_frames(length) == 21  # one decision per hop begun
    noisy = torch.randn(1, length) * 0.3
    with torch.no_grad():
        logits = model(noisy).router_logits
        for r in (3, 10, 20):
            changed = noisy.clone()
            changed[:, (r + 1 - delay) * hop :] += 0.5  # only input at or after the hop after r - delay
            assert torch.equal(model(changed).router_logits[:, : r + 1], logits[:, : r + 1])
            if r >= delay:
                changed = noisy.clone()
                changed[:, (r - delay) * hop : (r + 1 - delay) * hop] += 0.5  # the hop decision r reads
                assert not torch.equal(model(changed).router_logits[:, r], logits[:, r])


def _assert_same_values_and_gradients(ours, reference, inputs):
    """ours equals reference, and so do their gradients with respect to inputs for one random output grad."""
    torch.testing.assert_close(ours, reference)
    grad = torch.randn_like(reference)
    for a, b in zip(torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(reference, inputs, grad)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("tile_rows", [2048, 7])
@pytest.mark.parametrize("in_features,out_features", [(3, 40), (40, 3), (16, 16)])
def test_linear_equals_f_linear_in_values_and_gradients(in_features, out_features, tile_rows, monkeypatch):
    """products.linear (tiled products, weight gradients in the faster operand order) against F.linear, on a
    non-contiguous 3-D input, with and without bias, in one tile and in many."""
    import torch.nn.functional as F

    monkeypatch.setattr(products, "LINEAR_TILE_ROWS", tile_rows)
    torch.manual_seed(0)
    base = torch.randn(3, 2 * 101, in_features, dtype=torch.float64, requires_grad=True)
    x = base[:, ::2]  # [3, 101, K], a strided view
    weight = torch.randn(out_features, in_features, dtype=torch.float64, requires_grad=True)
    for bias in (torch.randn(out_features, dtype=torch.float64, requires_grad=True), None):
        ours = products.linear(x, weight, bias)
        reference = F.linear(x, weight, bias)
        _assert_same_values_and_gradients(ours, reference, [base, weight] + ([bias] if bias is not None else []))
        with torch.no_grad():
            torch.testing.assert_close(products.linear(x, weight, bias), reference)


@pytest.mark.parametrize("in_features,channels", [(3, 40), (40, 3)])
def test_linear_glu_equals_glu_of_linear_in_values_and_gradients(in_features, channels, monkeypatch):
    """products.linear_glu (value and gate as separate products, backward from the sigmoid and the output)
    against F.glu(F.linear(...)), on a strided 3-D input, with and without bias; tile rows made small so the
    fused autograd function runs on this small input."""
    import torch.nn.functional as F

    monkeypatch.setattr(products, "LINEAR_TILE_ROWS", 7)
    torch.manual_seed(0)
    base = torch.randn(3, 2 * 101, in_features, dtype=torch.float64, requires_grad=True)
    x = base[:, ::2]  # [3, 101, K]
    weight = torch.randn(2 * channels, in_features, dtype=torch.float64, requires_grad=True)
    for bias in (torch.randn(2 * channels, dtype=torch.float64, requires_grad=True), None):
        ours = products.linear_glu(x, weight, bias)
        assert type(ours.grad_fn).__name__ == "_LinearGLUBackward"
        reference = F.glu(F.linear(x, weight, bias), dim=-1)
        _assert_same_values_and_gradients(ours, reference, [base, weight] + ([bias] if bias is not None else []))
        with torch.no_grad():
            torch.testing.assert_close(products.linear_glu(x, weight, bias), reference)


def test_decoder_training_path_equals_conv_transpose_reference():
    """With autograd, the decoder's 1x1 conv, GLU-aware slicing and transposed conv (per-tap products over
    shifted views): outputs and gradients equal F.conv1d + F.conv_transpose1d with the sliced weights."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).train()
    for block in model.decoder:
        for width in (2, block.channels):
            x = torch.randn(2, 37, block.channels, requires_grad=True)
            mask = (torch.rand(2, 37, 1) > 0.3).float()
            out = block.forward_all_frames(x, width, mask)  # [B, (N + taps - 1) * S, C_out]
            grad = torch.randn_like(out)
            weights = [block.conv_in.weight, block.conv_in.bias, block.conv_tr.weight, block.conv_tr.bias]
            ours = torch.autograd.grad(out, [x, *weights], grad)
            rows = torch.cat([torch.arange(width), block.channels + torch.arange(width)])
            hidden = F.glu(F.conv1d(x.transpose(1, 2), weights[0][rows], weights[1][rows]), dim=1)
            reference = F.conv_transpose1d(hidden * mask.transpose(1, 2), weights[2][:width], weights[3], block.stride)
            reference = reference if block.last else F.relu(reference)
            expected = torch.autograd.grad(reference, [x, *weights], grad.transpose(1, 2))
            torch.testing.assert_close(out, reference.transpose(1, 2), rtol=1e-5, atol=1e-5)
            for a, b in zip(ours, expected):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_training_after_inference_mode_in_the_same_process():
    """Caches filled under torch.inference_mode (an evaluation) must not break a later training step."""
    resample._sinc_toeplitz.cache_clear()
    model = make_model("causal")
    noisy, _ = padded_batch([4099, 4099], seed=6)
    with torch.inference_mode():
        model(noisy, utilization=0.25)
    model.train()
    loss = model(noisy, utilization=0.25, clean_values=noisy * 0.5).loss
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


# ---- bfloat16 under torch.autocast --------------------------------------------------------------------
# bfloat16 keeps 8 significant bits: one rounding is a relative error of at most 2^-9 (0.2%). The blocks'
# products accumulate in float32 (oneDNN) and round their outputs once, and ten blocks in a row put the
# output's relative error at 0.2-0.5% (measured: tiny configs below, and 0.29-0.43% on the packaged default
# model over 4 s of the example): the bound of 1% (40 dB below the signal) leaves a margin of two.
BF16_RELATIVE_ERROR = 0.01


def _relative_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return float(((estimate - reference).norm(dim=-1) / reference.norm(dim=-1)).max().detach())


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_bf16_autocast_runs_every_path_close_to_float32(name, grad):
    model = make_model(name)
    config = model.config
    noisy, mask = padded_batch([4099, 2711])
    choice = torch.randint(0, config.num_factors, (2, config.num_router_frames(4099)),
                           generator=torch.Generator().manual_seed(1))
    calls = [(None, None), (0.125, None), (1.0, None), (choice, "masked"), (choice, "grouped")]
    for utilization, path in calls:
        kwargs = {"padding_mask": mask, "utilization": utilization, "execution": path}
        with torch.set_grad_enabled(grad):
            reference = model(noisy, **kwargs)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                reduced = model(noisy, **kwargs)
        assert reduced.enhanced_values.dtype == torch.float32  # the output leaves in the parameters' dtype
        assert torch.equal(reduced.choice, reference.choice)  # the router runs in float32
        error = _relative_error(reduced.enhanced_values, reference.enhanced_values)
        assert 0 < error <= BF16_RELATIVE_ERROR, (utilization, path, error)  # > 0: bf16 really ran


def test_bf16_weights_are_cached_apart_from_float32_ones():
    """Inference caches sliced weights per width and dtype: a float32 call after a bf16 one is unchanged."""
    model = make_model("causal")
    noisy, _ = padded_batch([4099])
    with torch.no_grad():
        before = model(noisy, utilization=0.25).enhanced_values
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(noisy, utilization=0.25)
        assert torch.equal(model(noisy, utilization=0.25).enhanced_values, before)


@pytest.mark.parametrize("utilization", [None, 0.25, 1.0])
def test_bf16_training_gradients_agree_in_direction_with_float32(utilization):
    """Same weights, batch and Gumbel noise: the backbone's gradient as one vector has cosine >= 0.995 with
    float32's (measured 0.9993-1.0000 on the tiny configs) and every tensor's >= 0.8 (measured >= 0.915; the
    lowest are small bias and recurrent tensors); the losses agree to 1%."""
    model = make_model("causal").train()
    noisy, mask = padded_batch([4099, 2711])
    clean = noisy * 0.5
    grads, losses = [], []
    for enabled in (False, True):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)  # the same Gumbel noise for the router's choices
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            out = model(noisy, padding_mask=mask, utilization=utilization, clean_values=clean)
        out.loss.backward()
        losses.append(out.loss.item())
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(g.dtype == torch.float32 for g in grads[1].values())
    assert losses[1] == pytest.approx(losses[0], rel=0.01)
    cosine = torch.nn.functional.cosine_similarity
    backbone = [n for n in grads[0] if not n.startswith("router.")]
    whole = cosine(torch.cat([grads[0][n].flatten() for n in backbone]),
                   torch.cat([grads[1][n].flatten() for n in backbone]), dim=0)
    assert whole >= 0.995
    for name in grads[0]:
        assert cosine(grads[0][name].flatten(), grads[1][name].flatten(), dim=0) >= 0.8, name
