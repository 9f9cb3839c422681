"""Losses: DEMUCS' MR-STFT against denoiser's own code and an independent numpy STFT, masks, gradients, the
router losses at known points, SI-SDR."""

import functools
import math
import types

import numpy as np
import pytest
import torch

from adaslim_hf.losses import (
    STFT_RESOLUTIONS,
    balance_loss,
    choice_fractions,
    compressed_spectral_loss,
    efficiency_loss,
    multi_resolution_stft_loss,
    pause_residual_loss,
    polarity_loss,
    share_floor_loss,
    si_sdr,
    si_sdr_loss,
    speech_enhancement_loss,
    stft_loss_terms,
    stft_magnitudes,
    suppression_loss,
    voice_loss,
)

SAMPLE_RATE = 16000


def assert_weight_adds_term(field: str, term, estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor):
    """The config weight ``field`` adds ``field`` x term(estimate, target) to L_SE, and a negative weight is refused
    with an error that names the field."""
    from adaslim_hf import AdaSlimConfig
    from adaslim_hf.losses import enhancement_losses

    plain = enhancement_losses(AdaSlimConfig(), estimate, target, noisy)[0]
    weighted = enhancement_losses(AdaSlimConfig(**{field: 2.0}), estimate, target, noisy)[0]
    torch.testing.assert_close(weighted - plain, 2.0 * term(estimate, target))
    with pytest.raises(ValueError, match=field):
        AdaSlimConfig(**{field: -1.0})


def harmonic_speech(seconds: float = 1.0, f0: float = 140.0, seed: int = 0) -> torch.Tensor:
    """A voiced-speech-like signal: harmonics of a gliding f0 with a syllable-rate envelope, [T] float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 20))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) + 0.05
    return torch.from_numpy(0.1 * voiced * envelope)


@pytest.fixture()
def pair():
    torch.manual_seed(0)
    clean = torch.stack([harmonic_speech(seed=0), harmonic_speech(f0=210.0, seed=1)])  # [2, T]
    estimate = clean + 0.02 * torch.randn_like(clean)
    return estimate, clean


class _LegacyStftTorch(types.ModuleType):
    """``torch`` as denoiser.stft_loss sees it, with the pre-2.0 ``torch.stft`` (no ``return_complex``): the
    real view [..., 2] of the complex STFT, which is what that call returned before PyTorch removed it."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def stft(x, n_fft, hop_length, win_length, window):
        return torch.view_as_real(torch.stft(x, n_fft, hop_length, win_length, window, return_complex=True))


def test_mr_stft_matches_denoiser(monkeypatch, pair):
    """denoiser 0.1.5 calls torch.stft without return_complex, which torch 2.x refuses; its module sees a torch
    whose stft returns the legacy real view, and every other line of its loss runs as written."""
    stft_loss = pytest.importorskip("denoiser.stft_loss")
    monkeypatch.setattr(stft_loss, "torch", _LegacyStftTorch())
    estimate, clean = (x.float() for x in pair)
    reference = stft_loss.MultiResolutionSTFTLoss(factor_sc=0.1, factor_mag=0.3)  # distinct factors: order shows
    sc, mag = reference(estimate, clean)
    ours = multi_resolution_stft_loss(estimate, clean, sc_factor=0.1, mag_factor=0.3)
    torch.testing.assert_close(ours, sc + mag, rtol=1e-5, atol=1e-7)
    sc_only = multi_resolution_stft_loss(estimate, clean, sc_factor=1.0, mag_factor=0.0)
    torch.testing.assert_close(sc_only, sc / 0.1, rtol=1e-5, atol=1e-7)
    convergence, log_magnitude = stft_loss_terms(estimate, clean)  # the two terms apart, unweighted
    torch.testing.assert_close(convergence, sc / 0.1, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(log_magnitude, mag / 0.3, rtol=1e-5, atol=1e-7)


def _numpy_magnitude(signal: np.ndarray, n_fft: int, hop: int, window_length: int) -> np.ndarray:
    """[T] -> [frames, bins]: centred frames (reflect padding), periodic Hann window zero-padded to n_fft."""
    n = np.arange(window_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / window_length)
    left = (n_fft - window_length) // 2
    window = np.pad(window, (left, n_fft - window_length - left))
    padded = np.pad(signal, n_fft // 2, mode="reflect")
    frames = 1 + (len(padded) - n_fft) // hop
    spectrum = np.stack([np.fft.rfft(padded[f * hop : f * hop + n_fft] * window) for f in range(frames)])
    return np.sqrt(np.maximum(np.abs(spectrum) ** 2, 1e-7))


def test_mr_stft_matches_independent_numpy(pair):
    estimate, clean = pair
    sc_total = mag_total = 0.0
    for n_fft, hop, window_length in STFT_RESOLUTIONS:
        est = np.stack([_numpy_magnitude(x, n_fft, hop, window_length) for x in estimate.numpy()])
        ref = np.stack([_numpy_magnitude(x, n_fft, hop, window_length) for x in clean.numpy()])
        sc_total += np.linalg.norm(ref - est) / np.linalg.norm(ref)
        mag_total += np.mean(np.abs(np.log(ref) - np.log(est)))
    expected = (0.1 * sc_total + 0.5 * mag_total) / len(STFT_RESOLUTIONS)
    ours = multi_resolution_stft_loss(estimate, clean, sc_factor=0.1, mag_factor=0.5)
    assert float(ours) == pytest.approx(expected, rel=1e-9)


def _torch_stft_loss(estimate, target, resolutions):
    """The MR-STFT loss through torch.stft and autograd (the gradient reference for the hand-written one)."""
    convergence = magnitude = 0
    for n_fft, hop, window_length in resolutions:
        window = torch.hann_window(window_length, dtype=estimate.dtype)
        est, ref = (torch.stft(x, n_fft, hop, window_length, window, return_complex=True).abs().pow(2)
                    .clamp(min=1e-7).sqrt() for x in (estimate, target))
        convergence = convergence + torch.linalg.norm(ref - est) / torch.linalg.norm(ref)
        magnitude = magnitude + (torch.log(ref) - torch.log(est)).abs().mean()
    return (0.1 * convergence + 0.3 * magnitude) / len(resolutions)


def test_stft_gradient_and_shared_target_magnitudes_equal_torch_stft(pair):
    """The magnitudes' backward is written out (one inverse real FFT): float64 gradients equal torch.stft's
    through autograd, with clamped (silent) frames and an odd n_fft; precomputed target magnitudes give the
    same loss and gradient."""
    estimate, clean = pair
    estimate = estimate.clone()
    estimate[0, 4000:6000] = 0  # below the magnitude floor: the clamp cuts the gradient there
    clean = clean.clone()
    clean[0, 4000:6000] = 0
    resolutions = (*STFT_RESOLUTIONS, (301, 37, 201))
    expected_input = estimate.clone().requires_grad_(True)
    expected = _torch_stft_loss(expected_input, clean, resolutions)
    expected.backward()
    for target_magnitudes in (None, stft_magnitudes(clean, resolutions)):
        ours_input = estimate.clone().requires_grad_(True)
        ours = multi_resolution_stft_loss(ours_input, clean, resolutions, sc_factor=0.1, mag_factor=0.3,
                                          target_magnitudes=target_magnitudes)
        ours.backward()
        torch.testing.assert_close(ours, expected, rtol=1e-12, atol=0)
        torch.testing.assert_close(ours_input.grad, expected_input.grad, rtol=1e-9, atol=1e-15)
    mask = torch.ones_like(clean)
    mask[1, 9000:] = 0
    shared = stft_magnitudes(clean, mask=mask)
    for sc, mag in ((0.1, 0.1), (0.0, 0.5)):
        torch.testing.assert_close(
            speech_enhancement_loss(estimate, clean, sc, mag, padding_mask=mask, target_magnitudes=shared),
            speech_enhancement_loss(estimate, clean, sc, mag, padding_mask=mask), rtol=1e-12, atol=0)


def test_speech_enhancement_loss_is_l1_plus_stft(pair):
    estimate, clean = pair
    l1 = (estimate - clean).abs().mean()
    torch.testing.assert_close(speech_enhancement_loss(estimate, clean, sc_factor=0, mag_factor=0), l1)
    torch.testing.assert_close(
        speech_enhancement_loss(estimate, clean), l1 + multi_resolution_stft_loss(estimate, clean)
    )
    assert float(speech_enhancement_loss(clean, clean)) == pytest.approx(0.0, abs=1e-12)


def test_gradients_flow(pair):
    estimate, clean = (x.float() for x in pair)
    estimate = estimate.clone().requires_grad_(True)
    mask = torch.ones_like(clean)
    mask[1, 12000:] = 0
    speech_enhancement_loss(estimate, clean, padding_mask=mask).backward()
    assert torch.isfinite(estimate.grad).all()
    assert estimate.grad[0].abs().sum() > 0 and estimate.grad[1, :12000].abs().sum() > 0
    assert estimate.grad[1, 12000:].abs().sum() == 0  # the padding gets no gradient
    estimate.grad = None
    si_sdr_loss(estimate, clean).backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0


def test_padding_does_not_count(pair):
    estimate, clean = pair
    valid = 10000
    mask = torch.ones_like(clean, dtype=torch.long)
    mask[1, valid:] = 0
    garbage_estimate, garbage_clean = estimate.clone(), clean.clone()
    garbage_estimate[1, valid:] = torch.randn(clean.shape[1] - valid, dtype=clean.dtype)
    garbage_clean[1, valid:] = 5.0
    for sc, mag in ((0.0, 0.0), (0.1, 0.1)):
        reference = speech_enhancement_loss(estimate, clean, sc, mag, padding_mask=mask)
        torch.testing.assert_close(
            speech_enhancement_loss(garbage_estimate, garbage_clean, sc, mag, padding_mask=mask), reference
        )
    # the L1 is a mean over real samples only
    errors = torch.cat([(estimate[0] - clean[0]).abs(), (estimate[1, :valid] - clean[1, :valid]).abs()])
    torch.testing.assert_close(
        speech_enhancement_loss(garbage_estimate, garbage_clean, 0, 0, padding_mask=mask), errors.mean()
    )
    torch.testing.assert_close(
        multi_resolution_stft_loss(garbage_estimate, garbage_clean, mask=mask),
        multi_resolution_stft_loss(estimate, clean, mask=mask),
    )
    with pytest.raises(ValueError, match="no real sample"):
        speech_enhancement_loss(estimate, clean, padding_mask=torch.zeros_like(mask))


def test_shape_errors_name_both_shapes(pair):
    estimate, clean = pair
    with pytest.raises(ValueError, match=r"\[2, 16000\].*\[2, 15999\]"):
        speech_enhancement_loss(estimate, clean[:, 1:])
    with pytest.raises(ValueError, match=r"\[2, 16000\].*\[16000\]"):
        multi_resolution_stft_loss(estimate, clean[0])
    with pytest.raises(ValueError, match=r"\[1, 16000\].*\[2, 16000\]"):
        si_sdr(estimate[:1], clean)
    with pytest.raises(ValueError, match="padding_mask"):
        speech_enhancement_loss(estimate, clean, padding_mask=torch.ones(2, 100))
    with pytest.raises(ValueError, match=r"\[batch, samples\]"):
        si_sdr(estimate[None], clean[None])


def test_si_sdr_known_values(pair):
    _, clean = pair
    scaled = si_sdr(0.37 * clean, clean)
    assert scaled.shape == (2,) and (scaled > 80).all()  # a scaled copy: only eps bounds it
    torch.manual_seed(1)
    noise = torch.randn_like(clean)
    assert (si_sdr(noise, clean) < -20).all()  # independent noise: almost no projection onto the target
    # estimate = target + distortion orthogonal to it, at a chosen ratio -> exactly that ratio in dB
    target = clean[0] - clean[0].mean()
    orthogonal = noise[0] - noise[0].mean()
    orthogonal = orthogonal - (orthogonal @ target) / (target @ target) * target
    orthogonal = orthogonal - orthogonal.mean()
    orthogonal = orthogonal * target.norm() / orthogonal.norm() * 10 ** (-10 / 20)  # 10 dB below the target
    assert float(si_sdr(target + orthogonal, target)) == pytest.approx(10.0, abs=1e-3)
    assert si_sdr(clean[0], clean[0]).shape == ()
    torch.testing.assert_close(
        si_sdr_loss(0.5 * clean + 0.1 * noise, clean), -si_sdr(0.5 * clean + 0.1 * noise, clean).mean()
    )


def test_si_sdr_padding_mask_equals_cutting_each_item(pair):
    """With a padding mask only each item's real samples count: the same as SI-SDR of the item cut at its end,
    whatever lies in the padding."""
    estimate, clean = pair
    estimate = clean + 0.3 * torch.randn_like(clean)
    lengths = [16000, 9000]
    mask = torch.zeros_like(clean)
    for item, length in enumerate(lengths):
        mask[item, :length] = 1
    garbage = estimate.clone()
    garbage[1, 9000:] = 5.0  # padding content must not matter
    masked = si_sdr(garbage, clean, padding_mask=mask)
    cut = torch.stack([si_sdr(estimate[item, :length], clean[item, :length]) for item, length in enumerate(lengths)])
    torch.testing.assert_close(masked, cut, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(si_sdr_loss(garbage, clean, padding_mask=mask), -cut.mean())
    with pytest.raises(ValueError, match="padding_mask"):
        si_sdr(estimate, clean, padding_mask=torch.ones(2, 100))


def test_si_sdr_matches_torchmetrics(pair):
    functional = pytest.importorskip("torchmetrics.functional.audio")
    estimate, clean = pair
    estimate = clean + 0.3 * torch.randn_like(clean)
    expected = functional.scale_invariant_signal_distortion_ratio(estimate, clean, zero_mean=True)
    torch.testing.assert_close(si_sdr(estimate, clean), expected, rtol=1e-6, atol=1e-6)


def test_balance_loss_known_points():
    for count in (2, 3, 4):
        uniform = torch.full((count,), 1 / count)
        assert float(balance_loss(uniform)) == pytest.approx(0.0, abs=1e-7)
        assert float(balance_loss(torch.eye(count)[0])) == pytest.approx(1.0)
    assert float(balance_loss(torch.tensor([0.5, 0.5, 0.0, 0.0]))) == pytest.approx(1 / 3)  # (4 * 0.5 - 1) / 3
    assert float(balance_loss(torch.tensor([1.0]))) == 0.0
    batched = torch.tensor([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])
    assert float(balance_loss(batched)) == pytest.approx(0.5)


def test_share_floor_loss_known_points():
    assert float(share_floor_loss(torch.tensor([0.4, 0.3, 0.2, 0.1]), 0.05)) == 0.0  # every factor above the floor
    assert float(share_floor_loss(torch.tensor([0.6, 0.3, 0.1, 0.0]), 0.05)) == pytest.approx(1.0)  # one at zero
    assert float(share_floor_loss(torch.tensor([0.6, 0.32, 0.06, 0.02]), 0.05)) == pytest.approx(0.6)  # 0.03 / 0.05
    batched = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]])
    assert float(share_floor_loss(batched, 0.1)) == pytest.approx(1.0)  # (0 + 2) / 2
    assert float(share_floor_loss(torch.tensor([1.0, 0.0]), 0.0)) == 0.0  # off
    fractions = torch.tensor([0.7, 0.25, 0.05, 0.0], requires_grad=True)
    share_floor_loss(fractions, 0.1).backward()
    torch.testing.assert_close(fractions.grad, torch.tensor([0.0, 0.0, -10.0, -10.0]))  # only the short factors
    with pytest.raises(ValueError, match=r"\[0, 1/4\]"):
        share_floor_loss(fractions, 0.3)


def test_efficiency_loss_known_points():
    factors = (0.125, 0.25, 0.5, 1.0)
    assert float(efficiency_loss(torch.tensor([0.0, 1.0, 0.0, 0.0]), factors, 0.25)) == pytest.approx(0.0)
    assert float(efficiency_loss(torch.tensor([0.0, 0.0, 0.0, 1.0]), factors, 0.25)) == pytest.approx(0.75**2)
    uniform = torch.full((4,), 0.25)  # mean utilization 0.46875
    assert float(efficiency_loss(uniform, factors, 0.1)) == pytest.approx((0.46875 - 0.1) ** 2)
    batched = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    assert float(efficiency_loss(batched, torch.tensor(factors), 0.25)) == pytest.approx(0.75**2 / 2)
    with pytest.raises(ValueError, match="factors"):
        efficiency_loss(uniform, (0.5, 1.0), 0.25)


def test_choice_fractions_and_router_gradient():
    """Straight-through one-hots -> fractions over valid frames, and the router losses reach the logits."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4, requires_grad=True)  # [B, N, J]
    soft = logits.softmax(-1)
    hard = torch.nn.functional.one_hot(soft.argmax(-1), 4).to(soft)
    one_hot = hard - soft.detach() + soft  # straight-through: forward hard, backward soft
    frame_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    fractions = choice_fractions(one_hot, frame_mask)
    choices = soft.argmax(-1)[frame_mask.bool()]
    expected = torch.bincount(choices, minlength=4).float() / 7
    torch.testing.assert_close(fractions, expected)
    assert float(fractions.detach().sum()) == pytest.approx(1.0)
    torch.testing.assert_close(choice_fractions(one_hot), torch.bincount(soft.argmax(-1).flatten(), minlength=4) / 10.0)
    loss = efficiency_loss(fractions, (0.125, 0.25, 0.5, 1.0), 0.1) + 0.1 * balance_loss(fractions)
    loss.backward()
    assert logits.grad[0].abs().sum() > 0 and logits.grad[1, :2].abs().sum() > 0
    assert logits.grad[1, 2:].abs().sum() == 0  # padded frames get no gradient
    with pytest.raises(ValueError, match=r"\[batch, frames\]"):
        choice_fractions(one_hot, frame_mask[:, :3])
    with pytest.raises(ValueError, match="valid frame"):
        choice_fractions(one_hot, torch.zeros_like(frame_mask))
    with pytest.raises(ValueError, match=r"\[batch, frames, factors\]"):
        choice_fractions(one_hot[0])


def test_float32_and_float64_agree(pair):
    estimate, clean = pair
    double = speech_enhancement_loss(estimate, clean)
    single = speech_enhancement_loss(estimate.float(), clean.float())
    assert single.dtype == torch.float32 and math.isclose(float(single), float(double), rel_tol=1e-5)


def test_polarity_loss_values_and_mask():
    clean = torch.randn(3, 4000)
    assert float(polarity_loss(0.5 * clean, clean)) == 0.0
    assert float(polarity_loss(-2.0 * clean, clean)) == pytest.approx(1.0, abs=1e-6)
    mixed = torch.stack([clean[0], -clean[1], clean[2]])
    assert float(polarity_loss(mixed, clean)) == pytest.approx(1 / 3, abs=1e-6)
    mask = torch.ones(3, 4000)
    mask[:, 2000:] = 0
    tail_inverted = torch.cat([clean[:, :2000], -3 * clean[:, 2000:]], dim=1)  # inverted only past the end
    assert float(polarity_loss(tail_inverted, clean, padding_mask=mask)) == 0.0
    assert float(polarity_loss(tail_inverted, clean)) > 0.4  # cos = (1 - 3) / (sqrt(2) sqrt(10))


def test_polarity_loss_takes_an_inverted_estimate_out_of_the_stft_loss_minimum():
    """L_SE cannot tell -clean from clean (the STFT loss not at all, the L1 term barely): a gain that starts
    negative stays negative under L_SE alone, and crosses to positive once L_Pol is added."""
    torch.manual_seed(0)
    clean, noise = torch.randn(2, 8000) * 0.05, torch.randn(2, 8000) * 0.02
    final = {}
    for weight in (0.0, 1.0):
        gain = torch.tensor(-0.8, requires_grad=True)
        optimizer = torch.optim.Adam([gain], lr=0.02)
        for _ in range(300):
            estimate = gain * clean + noise
            loss = speech_enhancement_loss(estimate, clean) + weight * polarity_loss(estimate, clean)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        final[weight] = float(gain.detach())
    assert final[0.0] < -0.5 and final[1.0] > 0.9


def test_pause_residual_loss_is_the_share_of_noise_left_in_the_pauses():
    """L_Pause = E / (E + N): 0.5 for the identity, 0.01 / 1.01 for noise pushed down 20 dB, 0 for silent
    pauses, below 1 however loud the estimate; only frames 40 dB
    below the loudest clean frame count, padding adds nothing, items without pauses are left out, and the
    gradient reaches the estimate."""
    torch.manual_seed(0)
    frame = 320
    clean = torch.randn(2, 10 * frame)
    clean[:, 6 * frame:] = 0.0  # frames 6..9 are pauses
    clean[:, 5 * frame: 6 * frame] *= 0.05  # 26 dB down: quiet speech, not a pause
    noise = 0.1 * torch.randn(2, 10 * frame)
    noisy = clean + noise
    assert float(pause_residual_loss(noisy, clean, noisy, frame=frame)) == pytest.approx(0.5)
    assert float(pause_residual_loss(clean + 0.1 * noise, clean, noisy, frame=frame)) == pytest.approx(0.01 / 1.01)
    assert float(pause_residual_loss(clean + 100 * noise, clean, noisy, frame=frame)) == pytest.approx(1e4 / (1e4 + 1))
    assert float(pause_residual_loss(clean, clean, noisy, frame=frame)) == 0.0
    # noise left in the quiet-speech frame is not counted
    leaky = clean.clone()
    leaky[:, 5 * frame: 6 * frame] += noise[:, 5 * frame: 6 * frame]
    assert float(pause_residual_loss(leaky, clean, noisy, frame=frame)) == 0.0
    # padding: the second item ends after 8 frames; what lies past its end changes nothing
    mask = torch.ones_like(clean)
    mask[1, 8 * frame:] = 0
    garbage = noisy.clone()
    garbage[1, 8 * frame:] = 7.0
    masked = pause_residual_loss(garbage, clean, noisy, frame=frame, padding_mask=mask)
    torch.testing.assert_close(masked, torch.tensor(0.5))  # both items: the identity over their real pauses
    # an item with no pause is left out of the mean
    busy = torch.randn(1, 10 * frame)
    both = pause_residual_loss(torch.cat([noisy[:1] * 0.5, busy]), torch.cat([clean[:1], busy]),
                               torch.cat([noisy[:1], busy + noise[:1]]), frame=frame)
    lone = pause_residual_loss(noisy[:1] * 0.5, clean[:1], noisy[:1], frame=frame)
    torch.testing.assert_close(both, lone)
    estimate = noisy.clone().requires_grad_(True)
    pause_residual_loss(estimate, clean, noisy, frame=frame).backward()
    assert estimate.grad[:, 6 * frame:].abs().sum() > 0 and estimate.grad[:, : 5 * frame].abs().sum() == 0
    with pytest.raises(ValueError, match="frame"):
        pause_residual_loss(noisy[:, :100], clean[:, :100], noisy[:, :100], frame=frame)


def test_compressed_spectral_loss_sees_level_and_sign_and_ignores_padding():
    """L_Cmp is 0 for the target itself and grows with the error; it tells an inverted estimate from the right
    one (the magnitudes alone cannot) and a halved one by (1 - 0.5^0.3)^2 on every compressed value; what lies
    past an item's end changes nothing; silence gives a finite gradient; the config weight adds it to L_SE."""
    speech = harmonic_speech(1.0).float()[None].repeat(2, 1) * 0.1  # [2, T]
    noise = 0.02 * torch.randn(2, speech.shape[-1], generator=torch.Generator().manual_seed(0))
    assert float(compressed_spectral_loss(speech, speech)) == 0.0
    small, large = (float(compressed_spectral_loss(speech + k * noise, speech)) for k in (0.5, 2.0))
    assert 0 < small < large
    # on the complex part alone (complex_share=1): silence costs C = mean of the compressed speech's squared
    # parts, the inverted speech 4 C (the sign seen), half the speech (1 - 0.5^0.3)^2 C
    complex_only = functools.partial(compressed_spectral_loss, complex_share=1.0)
    silence = float(complex_only(torch.zeros_like(speech), speech))
    assert float(complex_only(-speech, speech)) == pytest.approx(4 * silence, rel=1e-4)
    assert float(complex_only(0.5 * speech, speech)) == pytest.approx((1 - 0.5 ** 0.3) ** 2 * silence, rel=1e-2)
    mask = torch.ones_like(speech)
    mask[1, 8000:] = 0
    garbage = speech.clone()
    garbage[1, 8000:] = 3.0
    torch.testing.assert_close(compressed_spectral_loss(garbage, speech, padding_mask=mask),
                               compressed_spectral_loss(speech * mask, speech * mask))
    silent = torch.zeros_like(speech, requires_grad=True)
    compressed_spectral_loss(silent, speech).backward()
    assert torch.isfinite(silent.grad).all() and silent.grad.abs().sum() > 0
    assert_weight_adds_term("compressed_weight", compressed_spectral_loss, speech + noise, speech, speech + 2 * noise)


def test_suppression_loss_costs_only_the_speech_taken_away():
    """L_Sup is 0 for the target and for the target with noise added on top in bins it does not fill (more is
    never charged), grows as the speech is scaled down, equals L_Cmp's magnitude error for an estimate that
    only takes away (0.5 x speech), ignores what lies past an item's end, and the config weight adds it to L_SE."""
    speech = harmonic_speech(1.0).float()[None].repeat(2, 1) * 0.1  # [2, T]
    assert float(suppression_loss(speech, speech)) == 0.0
    assert float(suppression_loss(2.0 * speech, speech)) == 0.0  # louder everywhere: nothing taken away
    losses = [float(suppression_loss(k * speech, speech)) for k in (0.9, 0.5, 0.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    magnitude_only = float(compressed_spectral_loss(0.5 * speech, speech, complex_share=0.0))
    assert losses[1] == pytest.approx(magnitude_only, rel=1e-4)
    mask = torch.ones_like(speech)
    mask[1, 8000:] = 0
    garbage = speech.clone()
    garbage[1, 8000:] = 0.0
    torch.testing.assert_close(suppression_loss(garbage, speech, padding_mask=mask), torch.tensor(0.0))
    assert float(suppression_loss(garbage, speech)) > 0
    quiet = (1e-5 * torch.randn_like(speech)).requires_grad_(True)  # (at exact silence a magnitude has no direction)
    suppression_loss(quiet, speech).backward()
    assert torch.isfinite(quiet.grad).all() and quiet.grad.abs().sum() > 0
    assert_weight_adds_term("suppression_weight", suppression_loss, 0.7 * speech, speech,
                            speech + 0.1 * torch.randn_like(speech))


def test_voice_loss_weighs_the_weak_upper_bands_like_the_strong_low_ones():
    """L_Voice is 0 for the target and for a louder output, at most 1 for a silent one, and it charges a duller output
    (the speech above 2 kHz taken away, a small share of its energy) far more, against taking half the level
    everywhere, than L_Sup does; the config weight adds it to L_SE."""
    speech = harmonic_speech(1.0).float()[None].repeat(2, 1) * 0.1  # [2, T], harmonics falling as 1/k
    spectrum = torch.fft.rfft(speech)
    spectrum[:, torch.fft.rfftfreq(speech.shape[-1], 1 / SAMPLE_RATE) > 2000] = 0
    duller = torch.fft.irfft(spectrum, n=speech.shape[-1])  # [2, T]
    assert float(voice_loss(speech, speech)) == 0.0 and float(voice_loss(2.0 * speech, speech)) == 0.0
    silent = float(voice_loss(torch.zeros_like(speech), speech))  # below 1: bins above 2.8 kHz hold no harmonic
    assert 0.2 < silent <= 1.0 and float(voice_loss(duller, speech)) < silent
    voice_ratio = float(voice_loss(duller, speech)) / float(voice_loss(0.5 * speech, speech))
    sup_ratio = float(suppression_loss(duller, speech)) / float(suppression_loss(0.5 * speech, speech))
    assert voice_ratio > 1.5 * sup_ratio  # 6.8 against 3.6 here; the steeper tilt of real speech widens it
    assert_weight_adds_term("voice_weight", voice_loss, 0.7 * speech, speech, speech + 0.1 * torch.randn_like(speech))


def test_pesq_loss_ranks_noise_leaves_silence_out_and_joins_l_se():
    """L_PESQ (torch-pesq's P.862 disturbances): 0 for the target itself, larger the more noise is added, agrees
    in rank with the real PESQ-WB, leaves out an item whose target is silent instead of returning NaN, gives 0
    with a finite gradient when no item is left, and the config weight adds it to L_SE."""
    from pesq import pesq as pesq_reference

    from adaslim_hf import AdaSlimConfig
    from adaslim_hf.losses import enhancement_losses, pesq_loss

    generator = torch.Generator().manual_seed(0)
    speech = harmonic_speech(2.0).float()[None] * 0.1  # [1, T]
    noise = torch.randn(speech.shape, generator=generator) * speech.std()
    levels = (0.001, 0.005, 0.02)  # 60, 46 and 34 dB SNR (white noise on this signal saturates P.862 by 10 dB)
    noisy = torch.cat([speech + k * noise for k in levels])  # [3, T]
    assert float(pesq_loss(speech, speech, SAMPLE_RATE)) == pytest.approx(0.0, abs=1e-6)
    losses = [float(pesq_loss(item[None], speech, SAMPLE_RATE)) for item in noisy]
    assert 0 < losses[0] < losses[1] < losses[2]
    reference = [pesq_reference(SAMPLE_RATE, speech[0].numpy(), item.numpy(), "wb") for item in noisy]
    assert reference[0] > reference[1] > reference[2]

    targets = torch.cat([speech, torch.zeros_like(speech)])  # the second item's target is silent
    estimates = noisy[1:3].clone().requires_grad_(True)
    mixed = pesq_loss(estimates, targets, SAMPLE_RATE)
    assert mixed.item() == pytest.approx(losses[1], rel=1e-4)
    mixed.backward()
    assert torch.isfinite(estimates.grad).all() and float(estimates.grad[1].abs().sum()) == 0.0
    silent = torch.zeros_like(speech).requires_grad_(True)
    nothing = pesq_loss(silent, speech, SAMPLE_RATE)
    nothing.backward()
    assert nothing.item() == 0.0 and torch.isfinite(silent.grad).all()

    estimate = noisy[1:2]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(pesq_loss(estimate.bfloat16(), speech, SAMPLE_RATE))
    plain = enhancement_losses(AdaSlimConfig(), estimate, speech, estimate)[0]
    weighted = enhancement_losses(AdaSlimConfig(pesq_weight=0.5), estimate, speech, estimate)[0]
    torch.testing.assert_close(weighted - plain, 0.5 * pesq_loss(estimate, speech, SAMPLE_RATE))
    with pytest.raises(ValueError, match="pesq_weight"):
        AdaSlimConfig(pesq_weight=-1.0)


def test_routed_loss_log_is_the_mean_of_each_items_log_l_se(pair):
    """routed_loss="log": with the router's choices given, the loss is the mean over items of log(L_SE of the
    item alone) (so each item's gradient is divided by its own L_SE: a cleaner item, with the smaller loss,
    weighs more), se_loss reports the items' mean L_SE, and the routing terms are added as with "mean"; a static
    call (no choices) is unchanged. The config refuses an unknown mode and "log" beside -SI-SDR."""
    from adaslim_hf import AdaSlimConfig
    from adaslim_hf.losses import enhancement_losses, model_losses

    estimate, clean = (x.float() for x in pair)
    estimate = torch.stack([clean[0] + 0.002 * torch.randn_like(clean[0]), estimate[1] + 0.1 * estimate[1]])
    estimate.requires_grad_(True)
    one_hot = torch.nn.functional.one_hot(torch.tensor([[0, 1, 3], [2, 2, 3]]), 4).float()  # [B, N, J]
    config = AdaSlimConfig(routed_loss="log", compressed_weight=1.0)
    items = [enhancement_losses(config, estimate[i:i + 1], clean[i:i + 1], estimate[i:i + 1])[0] for i in range(2)]
    assert float(items[0].detach()) < float(items[1].detach())  # the first item is the cleaner one

    logged = model_losses(config, estimate, clean, estimate, one_hot=one_hot)
    routing = config.efficiency_weight * logged["efficiency_loss"] + config.balance_weight * logged["balance_loss"]
    expected = (items[0].log() + items[1].log()) / 2 + config.polarity_weight * logged["polarity_loss"] + routing
    torch.testing.assert_close(logged["loss"], expected)
    torch.testing.assert_close(logged["se_loss"], (items[0] + items[1]) / 2)
    (gradient,) = torch.autograd.grad(logged["loss"], estimate)
    (reference,) = torch.autograd.grad((items[0] / items[0].detach() + items[1] / items[1].detach()) / 2, estimate)
    torch.testing.assert_close(gradient, reference)  # polarity 0 here: both items correlate with their targets

    mean_config = AdaSlimConfig(compressed_weight=1.0)
    static = model_losses(config, estimate, clean, estimate)
    torch.testing.assert_close(static["loss"], model_losses(mean_config, estimate, clean, estimate)["loss"])
    routed_mean = model_losses(mean_config, estimate, clean, estimate, one_hot=one_hot)
    assert not torch.allclose(routed_mean["loss"], logged["loss"])
    with pytest.raises(ValueError, match="routed_loss"):
        AdaSlimConfig(routed_loss="median")
    with pytest.raises(ValueError, match="si_sdr_weight"):
        AdaSlimConfig(routed_loss="log", si_sdr_weight=0.1)
