"""Losses of the adaptive-slimming DEMUCS. Every function takes ``(estimate, target)`` in that order.

- L_SE: DEMUCS' L1 on the waveform plus its multi-resolution STFT loss (spectral convergence + log
  magnitude; Defossez et al. 2020, after Yamamoto et al.'s Parallel WaveGAN).
- L_Eff = (sum_j Y_j u_j - u_target)^2 pulls the mean utilization to the target.
- L_Bal = (J sum_j Y_j^2 - 1) / (J - 1): 0 when every factor is used equally, 1 when one takes every frame.
Y_j is the fraction of router frames that chose factor j, from the straight-through one-hots (so it
carries gradient to the router).

Imports only torch: this file travels to the Hub next to the model as remote code.
"""

import torch
import torch.nn.functional as F

STFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))  # (n_fft, hop, window)
MAGNITUDE_FLOOR = 1e-7  # squared-magnitude clamp, as denoiser's stft_loss


def _check_pair(estimate: torch.Tensor, target: torch.Tensor):
    if estimate.shape != target.shape:
        raise ValueError(f"estimate and target must have the same shape, got {list(estimate.shape)} and "
                         f"{list(target.shape)}.")


def _magnitude(signal: torch.Tensor, n_fft: int, hop: int, window_length: int) -> torch.Tensor:
    """[B, T] -> |STFT| [B, frames, bins] with a Hann window, magnitudes clamped at sqrt(MAGNITUDE_FLOOR)."""
    window = torch.hann_window(window_length, device=signal.device, dtype=signal.dtype)
    spectrum = torch.stft(signal, n_fft, hop, window_length, window, return_complex=True)
    return torch.sqrt(torch.clamp(spectrum.real**2 + spectrum.imag**2, min=MAGNITUDE_FLOOR)).transpose(1, 2)


def multi_resolution_stft_loss(
    estimate: torch.Tensor,
    target: torch.Tensor,
    resolutions=STFT_RESOLUTIONS,
    sc_factor: float = 0.1,
    mag_factor: float = 0.1,
) -> torch.Tensor:
    """sc_factor * spectral convergence + mag_factor * log-magnitude L1, averaged over resolutions.

    estimate, target: [B, T] (or [T]). Spectral convergence is ||(|Y| - |X|)||_F / ||Y||_F with Y the target.
    """
    _check_pair(estimate, target)
    estimate, target = estimate.reshape(-1, estimate.shape[-1]), target.reshape(-1, target.shape[-1])
    convergence = magnitude = estimate.new_zeros(())
    for n_fft, hop, window_length in resolutions:
        est, ref = _magnitude(estimate, n_fft, hop, window_length), _magnitude(target, n_fft, hop, window_length)
        convergence = convergence + torch.linalg.norm(ref - est) / torch.linalg.norm(ref)
        magnitude = magnitude + F.l1_loss(torch.log(est), torch.log(ref))
    return (sc_factor * convergence + mag_factor * magnitude) / len(resolutions)


def speech_enhancement_loss(
    estimate: torch.Tensor,
    target: torch.Tensor,
    sc_factor: float = 0.1,
    mag_factor: float = 0.1,
    padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_SE: L1 on the waveform plus the multi-resolution STFT loss (skipped when both factors are 0).

    estimate, target: [B, T]. padding_mask [B, T] (1 = real sample): padded samples do not count in the L1,
    and both signals are zeroed past each item's end before the STFTs.
    """
    _check_pair(estimate, target)
    if padding_mask is not None:
        if padding_mask.shape != estimate.shape:
            raise ValueError(f"padding_mask must have the shape of the signals {list(estimate.shape)}, "
                             f"got {list(padding_mask.shape)}.")
        mask = padding_mask.to(estimate.dtype)
        estimate, target = estimate * mask, target * mask
        loss = (estimate - target).abs().sum() / mask.sum().clamp(min=1)
    else:
        loss = F.l1_loss(estimate, target)
    if sc_factor or mag_factor:
        loss = loss + multi_resolution_stft_loss(estimate, target, sc_factor=sc_factor, mag_factor=mag_factor)
    return loss


def si_sdr(estimate: torch.Tensor, target: torch.Tensor, zero_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB per item: [B, T] -> [B] (or [T] -> [])."""
    _check_pair(estimate, target)
    if zero_mean:
        estimate = estimate - estimate.mean(dim=-1, keepdim=True)
        target = target - target.mean(dim=-1, keepdim=True)
    scale = (estimate * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + eps)
    projection = scale * target
    noise = estimate - projection
    return 10 * torch.log10((projection.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def si_sdr_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative mean SI-SDR (dB), a loss to minimise."""
    return -si_sdr(estimate, target).mean()


def choice_fractions(one_hot: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Y: [B, N, J] (straight-through) one-hots and an optional [B, N] validity mask -> [J] fractions of the
    valid router frames that chose each factor (they sum to 1)."""
    if one_hot.dim() != 3:
        raise ValueError(f"one_hot must have shape [batch, frames, factors], got {list(one_hot.shape)}.")
    if frame_mask is not None:
        one_hot = one_hot * frame_mask[..., None].to(one_hot.dtype)
    counts = one_hot.sum(dim=(0, 1))
    return counts / counts.sum().clamp(min=1)


def efficiency_loss(frame_fractions: torch.Tensor, factors, target: float) -> torch.Tensor:
    """L_Eff = (sum_j Y_j u_j - target)^2; ``frame_fractions`` [J] or [B, J] (then averaged over B)."""
    factors = torch.as_tensor(factors, dtype=frame_fractions.dtype, device=frame_fractions.device)
    if frame_fractions.shape[-1] != factors.numel():
        raise ValueError(f"frame_fractions has {frame_fractions.shape[-1]} factors, factors has {factors.numel()}.")
    return ((frame_fractions * factors).sum(-1) - target).pow(2).mean()


def balance_loss(frame_fractions: torch.Tensor) -> torch.Tensor:
    """L_Bal = (J sum_j Y_j^2 - 1) / (J - 1): 0 for uniform use, 1 when one factor takes every frame (0 if J = 1)."""
    count = frame_fractions.shape[-1]
    if count == 1:
        return frame_fractions.new_zeros(())
    return ((count * frame_fractions.pow(2).sum(-1) - 1) / (count - 1)).mean()


__all__ = [
    "balance_loss",
    "choice_fractions",
    "efficiency_loss",
    "multi_resolution_stft_loss",
    "si_sdr",
    "si_sdr_loss",
    "speech_enhancement_loss",
]
