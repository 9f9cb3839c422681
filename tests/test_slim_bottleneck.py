"""config.slim_bottleneck: a frame at factor u runs the first ceil(u * G) groups of the grouped GRU, the others
hold their state and put out zeros. Every path (autograd, batched inference, one item alone, a static factor,
a stream's few rows and many rows, the static export) equals an independent reference: each group's own
nn.GRU run over only the frames it runs. The full width is the unslimmed model; narrower widths cost fewer
MACs, and training may switch the option on in a model trained without it. A stream of a slimmed model:
tests/test_streaming.py."""

import pytest
import torch
from helpers import amplify_bottleneck

from adaslim_hf import AdaSlimConfig, AdaSlimModel
from adaslim_hf.bottleneck import GroupedGRU, active_groups
from adaslim_hf.macs import bottleneck_macs_per_frame, call_macs, macs_per_sample

CHANNELS, GROUPS, WIDTH = 16, 4, 4


pytestmark = pytest.mark.usefixtures("one_thread")


def make_gru(seed=0):
    torch.manual_seed(seed)
    return GroupedGRU(CHANNELS, GROUPS, layers=1, bidirectional=False)


def reference(gru, x, state, counts):
    """Each group's nn.GRU over only the frames it runs (counts [B, N]: the first counts groups run), from its
    state; zeros where it does not run. x [B, N, C], state [G, B, g] -> (y [B, N, C], final state [G, B, g])."""
    batch, frames, _ = x.shape
    y = torch.zeros(batch, frames, CHANNELS)
    final = state.clone()
    for b in range(batch):
        for g, group_gru in enumerate(gru.grus):
            runs = counts[b] > g  # [N]
            if runs.any():
                part = x[b : b + 1, runs, g * WIDTH : (g + 1) * WIDTH]
                out, last = group_gru(part, state[g : g + 1, b : b + 1].contiguous())
                y[b, runs, g * WIDTH : (g + 1) * WIDTH] = out[0]
                final[g, b] = last[0, 0]
    return y, final


def random_case(batch=3, frames=23, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, CHANNELS, generator=generator)
    state = torch.randn(GROUPS, batch, WIDTH, generator=generator) * 0.5
    counts = torch.randint(0, GROUPS + 1, (batch, frames), generator=generator)  # 0 to G, zeros included
    return x, state, counts


# ----------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("groups, expected", [(4, [1, 1, 2, 4]), (8, [1, 2, 4, 8]), (2, [1, 1, 1, 2])])
def test_active_groups_per_factor(groups, expected):
    config = AdaSlimConfig(hidden=8, depth=3, bottleneck_groups=groups, slim_bottleneck=True)
    assert config.utilization_factors == [0.125, 0.25, 0.5, 1.0]
    assert [config.bottleneck_active_groups(j) for j in range(config.num_factors)] == expected
    unslimmed = AdaSlimConfig(hidden=8, depth=3, bottleneck_groups=groups)
    assert [unslimmed.bottleneck_active_groups(j) for j in range(4)] == [groups] * 4


@pytest.mark.parametrize("overrides", [{"bottleneck": "lstm"}, {"bottleneck_layers": 2},
                                       {"causal": False, "stride": 2, "resample": 2}])
def test_needs_the_one_layer_causal_grouped_gru(overrides):
    with pytest.raises(ValueError, match="slim_bottleneck"):
        AdaSlimConfig(hidden=8, depth=3, slim_bottleneck=True, **overrides)


# ----------------------------------------------------------------------------------------------------
# The grouped GRU's paths against the reference
# ----------------------------------------------------------------------------------------------------


def test_inference_batch_and_item_alone_equal_the_reference():
    gru = make_gru()
    x, state, counts = random_case()
    expected, expected_state = reference(gru, x, state, counts)
    with torch.no_grad():
        y, final = gru(x, state.clone(), active_groups(counts, GROUPS))
        assert (y - expected).abs().max() <= 1e-5
        assert (final - expected_state).abs().max() <= 1e-5
        for b in range(x.shape[0]):  # one item alone: no held groups, the per-frame counts only
            alone, alone_state = gru(x[b : b + 1], state[:, b : b + 1].clone(), active_groups(counts[b : b + 1], GROUPS))
            assert (alone[0] - expected[b]).abs().max() <= 1e-5
            assert (alone_state[:, 0] - expected_state[:, b]).abs().max() <= 1e-5


@pytest.mark.parametrize("count", [0, 1, 2, 4])
def test_a_static_count_equals_the_reference(count):
    gru = make_gru()
    x, state, _ = random_case()
    counts = torch.full(x.shape[:2], count)
    expected, expected_state = reference(gru, x, state, counts)
    with torch.no_grad():
        y, final = gru(x, state.clone(), active_groups(counts, GROUPS))
    assert (y - expected).abs().max() <= 1e-5
    assert (final - expected_state).abs().max() <= 1e-5
    if count == GROUPS:  # every group running is the unslimmed GRU
        with torch.no_grad():
            assert torch.equal(y, gru(x, state.clone())[0])


def test_autograd_path_values_and_gradients_equal_the_reference():
    gru = make_gru()
    x, state, counts = random_case()
    x.requires_grad_(True)
    y, final = gru(x, state.clone(), active_groups(counts, GROUPS))
    (y.pow(2).sum() + final.sum()).backward()
    grads = [p.grad.clone() for p in gru.parameters()] + [x.grad.clone()]

    gru.zero_grad()
    x_ref = x.detach().clone().requires_grad_(True)
    expected, expected_state = reference(gru, x_ref, state, counts)
    assert (y.detach() - expected.detach()).abs().max() <= 1e-5
    assert (final.detach() - expected_state.detach()).abs().max() <= 1e-5
    (expected.pow(2).sum() + expected_state.sum()).backward()
    expected_grads = [p.grad for p in gru.parameters()] + [x_ref.grad]
    for got, want in zip(grads, expected_grads):
        assert (got - want).abs().max() <= 1e-4 * max(1.0, float(want.abs().max()))


def test_active_weights_the_output_so_a_router_gets_a_gradient():
    gru = make_gru()
    x, state, counts = random_case()
    active = active_groups(counts, GROUPS).requires_grad_(True)
    y, _ = gru(x, state, active)
    y.sum().backward()
    # straight through: a running group's gradient is its output's, a held one's that of the state it holds,
    # so the router learns to switch groups on as well as off
    running = active.detach() != 0
    assert active.grad[running].abs().min() > 0 and active.grad[~running].abs().min() > 0


@pytest.mark.parametrize("rows", [5, 40])  # a few rows: one nn.GRU per group; 16 and more: the fused path
def test_stream_step_equals_the_reference(rows):
    gru = make_gru()
    x, state, counts = random_case(batch=1, frames=rows)
    expected, expected_state = reference(gru, x, state, counts)
    with torch.no_grad():
        out, new_state = gru.step(x[0], state.clone(), counts[0].tolist())
    assert (out - expected[0]).abs().max() <= 1e-5
    assert (new_state - expected_state).abs().max() <= 1e-5


def test_bad_active_groups_are_refused():
    gru = make_gru()
    x, state, counts = random_case()
    with pytest.raises(ValueError, match=r"\[batch, frames, groups\]"):
        gru(x, state, active_groups(counts, GROUPS)[:, :-1])
    with pytest.raises(ValueError, match="group counts"):
        gru.step(x[0], None, [1, 2])
    bidirectional = GroupedGRU(CHANNELS, GROUPS, layers=1, bidirectional=True)
    with pytest.raises(ValueError, match="one-layer causal"):
        bidirectional(x, None, active_groups(counts, GROUPS))


# ----------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------


def slim_model(seed=0):
    """A tiny slimmed model whose bottleneck matters: its input weights and the first decoder block are scaled,
    so that the groups a narrow factor leaves out change the output visibly (a random tiny model hardly passes
    the bottleneck's output on)."""
    torch.manual_seed(seed)
    return amplify_bottleneck(AdaSlimModel(AdaSlimConfig(hidden=8, depth=4, slim_bottleneck=True, normalize=False)).eval())


def unslimmed_copy(model):
    values = {**model.config.to_dict(), "slim_bottleneck": False}
    copy = AdaSlimModel(AdaSlimConfig.from_dict(values)).eval()
    copy.load_state_dict(model.state_dict())
    return copy


def test_full_width_is_the_unslimmed_model_and_narrow_widths_differ():
    model = slim_model()
    unslimmed = unslimmed_copy(model)
    noisy = torch.randn(2, 6000) * 0.1
    with torch.no_grad():
        assert torch.equal(model(noisy, utilization=1.0).enhanced_values,
                           unslimmed(noisy, utilization=1.0).enhanced_values)
        for factor in (0.125, 0.25, 0.5):
            difference = (model(noisy, utilization=factor).enhanced_values
                          - unslimmed(noisy, utilization=factor).enhanced_values).abs().max()
            assert difference > 1e-5, factor  # against rounding of ~1e-7


def test_routed_batch_equals_items_alone_and_the_masked_path():
    model = slim_model()
    config = model.config
    noisy = torch.randn(3, 5000) * 0.1
    choice = torch.randint(0, config.num_factors, (3, config.num_router_frames(5000)),
                           generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        sliced = model(noisy, utilization=choice).enhanced_values
        masked = model(noisy, utilization=choice, execution="masked").enhanced_values
        alone = torch.cat([model(noisy[i : i + 1], utilization=choice[i : i + 1]).enhanced_values for i in range(3)])
    assert (sliced - masked).abs().max() <= 1e-5
    assert (sliced - alone).abs().max() <= 1e-5
    model.train()  # the autograd path computes the same output
    trained = model(noisy, utilization=choice, execution="masked").enhanced_values
    assert (trained.detach() - sliced).abs().max() <= 1e-5


def test_training_with_the_router_reaches_the_router_through_the_bottleneck():
    model = slim_model().train()
    noisy = torch.randn(2, 4000) * 0.1
    output = model(noisy, clean_values=noisy * 0.5)
    output.loss.backward()
    assert all(p.grad is not None for p in model.bottleneck.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.router.parameters() if p.grad is not None) > 0


def test_macs_count_only_the_groups_that_run():
    config = AdaSlimConfig(slim_bottleneck=True)  # the paper's backbone: 768-wide bottleneck, 4 groups
    unslimmed = AdaSlimConfig()
    full = bottleneck_macs_per_frame(unslimmed)
    assert [bottleneck_macs_per_frame(config, j) for j in range(4)] == [full // 4, full // 4, full // 2, full]
    assert macs_per_sample(config, 1.0)["bottleneck"] == macs_per_sample(unslimmed, 1.0)["bottleneck"]
    assert macs_per_sample(config, 0.25)["bottleneck"] == macs_per_sample(unslimmed, 0.25)["bottleneck"] / 4
    # a call's MACs: the static factor's rate times the samples, every bottleneck frame counted at its factor
    length = 16000
    frames = config.num_router_frames(length)
    lengths = torch.tensor([length])
    for index, factor in enumerate(config.utilization_factors):
        per_call = call_macs(config, torch.full((1, frames), index), lengths, router=False)
        plain = call_macs(unslimmed, torch.full((1, frames), index), lengths, router=False)
        saved = (bottleneck_macs_per_frame(unslimmed) - bottleneck_macs_per_frame(config, index)) \
            * config.frames_per_layer(length)[-1]
        assert float(plain - per_call) == pytest.approx(saved), factor


def test_static_export_equals_the_model():
    from adaslim_hf.export import StaticExport

    model = slim_model()
    noisy = torch.randn(1, 6000) * 0.1
    for factor in (0.25, 1.0):
        with torch.no_grad():
            exported = StaticExport(model, factor)(noisy)
            expected = model(noisy, utilization=factor).enhanced_values
        assert (exported.reshape(expected.shape) - expected).abs().max() <= 1e-5, factor


def test_training_may_switch_it_on_in_a_model_trained_without_it(tmp_path):
    from adaslim_hf.training.model import load_model

    plain = unslimmed_copy(slim_model())
    plain.save_pretrained(tmp_path / "plain")
    switched = load_model(str(tmp_path / "plain"), model_overrides={"slim_bottleneck": True})
    assert switched.config.slim_bottleneck
    for name, value in plain.state_dict().items():
        assert torch.equal(switched.state_dict()[name], value), name
