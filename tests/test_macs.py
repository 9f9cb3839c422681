"""Analytic compute accounting: the paper's table, FlopCounterMode on the executed matmuls, per-call MACs."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import adaslim_hf.modeling_adaslim as modeling
from adaslim_hf import AdaSlimConfig, AdaSlimModel
from adaslim_hf.execution import LayerPlan
from adaslim_hf.macs import (
    block_macs_per_frame,
    bottleneck_macs_per_frame,
    count_parameters,
    macs_per_sample,
    resampling_macs_per_sample,
    router_macs_per_frame,
)

# MACs per input sample of the authors' static models (project page table).
PAPER_MACS = {0.125: 8_944, 0.25: 15_664, 0.5: 29_104, 1.0: 55_985}


def test_default_config_reproduces_the_paper_table_within_5_percent():
    config = AdaSlimConfig()
    assert macs_per_sample(config, 1.0)["conv"] == 53_760  # exact: 26,880 encoder + 26,880 decoder
    for factor, paper in PAPER_MACS.items():
        total = macs_per_sample(config, factor)["total"]
        assert abs(total - paper) / paper < 0.05, (factor, total, paper)
    assert bottleneck_macs_per_frame(AdaSlimConfig(bottleneck="lstm")) / 256 == 16_384  # DEMUCS' 2-layer LSTM
    assert resampling_macs_per_sample(config) == 672


def test_router_overhead_is_a_fraction_of_a_percent():
    config = AdaSlimConfig()
    parameters = count_parameters(AdaSlimModel(config))
    assert 0.02 < parameters["router_percent"] < 0.1  # the paper reports 0.06%
    assert router_macs_per_frame(config) / config.router_hop / macs_per_sample(config, 1.0)["total"] < 0.001


def _inplace_addmm_flops(self_shape, a_shape, b_shape, *args, **kwargs) -> int:
    """aten.addmm_ (FlopCounterMode's registry counts addmm, mm, bmm and their out= forms, not addmm_)."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def flop_counter() -> FlopCounterMode:
    """FlopCounterMode that also counts the in-place products the inference paths accumulate with."""
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _inplace_addmm_flops})


def test_flop_counter_counts_every_product_form_the_model_uses():
    a, b, c = torch.randn(5, 3), torch.randn(3, 4), torch.zeros(5, 4)
    with flop_counter() as counter:
        c.addmm_(a, b)
        torch.mm(a, b, out=c)
        torch.addmm(c, a, b, out=c)
        torch.baddbmm(c[None], a[None], b[None])
    assert counter.get_total_flops() == 4 * 2 * 5 * 3 * 4


def flops_of(fn, *args):
    with flop_counter() as counter:
        fn(*args)
    return counter.get_total_flops()


@pytest.mark.parametrize("kwargs", [{"hidden": 8, "depth": 4}, {"hidden": 8, "depth": 3, "glu": False, "stride": 2, "resample": 2}])
def test_flop_counter_matches_analytic_block_macs_for_every_factor(kwargs):
    config = AdaSlimConfig(**kwargs)
    model = AdaSlimModel(config).eval()
    frames = config.frames_per_layer(3001)
    x = torch.randn(1, config.valid_length(3001) * config.resample, 1)
    with torch.no_grad():
        for index in range(config.num_factors):
            h = x
            for layer, (encoder, decoder) in enumerate(zip(model.encoder, reversed(model.decoder))):
                width = config.slim_width(layer, index)
                analytic = 2 * frames[layer] * block_macs_per_frame(config, layer, width)
                choice = torch.full((1, config.num_router_frames(3001)), index)
                widths = tuple(config.slim_width(layer, j) for j in range(config.num_factors))
                per_router_frame = config.router_stride * config.stride ** (config.depth - 1 - layer)
                grouped = LayerPlan.grouped(choice, widths, per_router_frame, frames[layer])
                sliced = LayerPlan("sliced", width=width)
                encoded = modeling.encoder_forward(encoder, h, sliced)
                counted = {
                    name: flops_of(modeling.encoder_forward, encoder, h, plan)
                    + flops_of(modeling.decoder_forward, decoder, encoded, torch.zeros_like(encoded), plan)
                    for name, plan in (("grouped", grouped), ("sliced", sliced))
                }
                assert counted["grouped"] == analytic
                assert counted["sliced"] == analytic
                h = encoded
            bottleneck_flops = flops_of(model.bottleneck, h)
            assert bottleneck_flops == 2 * frames[-1] * bottleneck_macs_per_frame(config)


def test_call_macs_equal_the_flops_of_the_grouped_path(monkeypatch):
    torch.manual_seed(0)
    config = AdaSlimConfig(hidden=8, depth=4)
    model = AdaSlimModel(config).eval()
    counted = []

    def counting(original):
        def wrapper(*args):
            with flop_counter() as counter:
                result = original(*args)
            counted.append(counter.get_total_flops())
            return result

        return wrapper

    monkeypatch.setattr(modeling, "encoder_forward", counting(modeling.encoder_forward))
    monkeypatch.setattr(modeling, "decoder_forward", counting(modeling.decoder_forward))
    length = 9000
    choice = torch.randint(0, config.num_factors, (1, config.num_router_frames(length)))
    with torch.no_grad():
        out = model(torch.randn(1, length) * 0.1, utilization=choice)
    fixed = (
        config.frames_per_layer(length)[-1] * bottleneck_macs_per_frame(config)
        + config.valid_length(length) * resampling_macs_per_sample(config)
    )
    assert sum(counted) / 2 == pytest.approx(out.macs.item() - fixed)
    with torch.no_grad():
        routed = model(torch.randn(1, length) * 0.1)
        forced = model(torch.randn(1, length) * 0.1, utilization=routed.choice)
    assert routed.macs.item() - forced.macs.item() == config.num_router_frames(length) * router_macs_per_frame(config)


def test_long_input_macs_approach_the_steady_state_rate():
    config = AdaSlimConfig()
    model = AdaSlimModel(config).eval()
    length = 16000 * 4
    with torch.no_grad():
        for factor in (0.25, 1.0):
            out = model(torch.randn(1, length) * 0.1, utilization=factor)
            per_sample = out.macs.item() / length
            assert per_sample == pytest.approx(macs_per_sample(config, factor, router=False)["total"], rel=0.02)
