"""At utilization 1.0 with the LSTM bottleneck, AdaSlimModel computes exactly what facebookresearch/denoiser's
Demucs computes, through the converter that reads denoiser state dicts (the published checkpoints' form)."""

import pytest
import torch

from adaslim_hf.convert_denoiser import (
    config_from_denoiser,
    convert_denoiser,
    convert_state_dict,
    load_denoiser_state_dict,
)

demucs = pytest.importorskip("denoiser.demucs", reason="pip install --no-deps denoiser==0.1.5")

CASES = [
    {"hidden": 8, "depth": 4, "causal": True},
    {"hidden": 16, "depth": 5, "causal": True},
    {"hidden": 8, "depth": 4, "causal": False, "stride": 2, "resample": 2},
    {"hidden": 12, "depth": 3, "causal": False, "resample": 4},
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(f"{a}{b}" for a, b in k.items()))
def test_full_utilization_matches_denoiser(kwargs):
    torch.manual_seed(0)
    reference = demucs.Demucs(**kwargs).eval()
    model = convert_denoiser(reference.state_dict(), **kwargs)
    for length in (16000, 7777, 331):
        noisy = torch.randn(2, 1, length) * 0.2
        with torch.no_grad():
            expected = reference(noisy)
            ours = model(noisy, utilization=1.0).enhanced_values
        assert ours.shape == expected.shape
        assert (ours - expected).abs().max() <= 1e-5
    assert model.config.valid_length(12345) == reference.valid_length(12345)
    assert model.config.total_stride == reference.total_stride


def test_checkpoint_file_round_trip_and_mismatched_weights(tmp_path):
    torch.manual_seed(0)
    reference = demucs.Demucs(hidden=8, depth=4)
    path = tmp_path / "model.th"
    torch.save(reference.state_dict(), path)
    state = load_denoiser_state_dict(path)
    with pytest.raises(ValueError, match="do not fit the config"):
        convert_state_dict(state, config_from_denoiser(hidden=16, depth=4))
    with pytest.raises(ValueError, match="do not fit the config"):
        convert_state_dict(state, config_from_denoiser(hidden=8, depth=3))
    with pytest.raises(ValueError, match="not a key of a denoiser"):
        convert_state_dict({"foo.weight": torch.zeros(1)}, config_from_denoiser(hidden=8, depth=4))
    with pytest.raises(ValueError, match="unknown Demucs argument"):
        config_from_denoiser(hiden=8)
    with pytest.raises(ValueError, match="not found"):
        load_denoiser_state_dict(tmp_path / "missing.th")
    (tmp_path / "junk.th").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="tensors-only"):
        load_denoiser_state_dict(tmp_path / "junk.th")
