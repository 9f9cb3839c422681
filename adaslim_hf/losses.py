"""Losses of the adaptive-slimming DEMUCS. Every function takes ``(estimate, target)`` in that order.

- L_SE: DEMUCS' L1 on the waveform plus its multi-resolution STFT loss (spectral convergence + log
  magnitude; Defossez et al. 2020, after Yamamoto et al.'s Parallel WaveGAN), as in
  ``denoiser/stft_loss.py`` but with the complex ``torch.stft`` API.
- SI-SDR (Le Roux et al. 2019), in dB per item, and its negative mean as an optional loss.
- L_Pause (optional): how much of the noise the estimate lets through in the target's pauses, in [0, 1).
- L_Cmp (optional): squared error of power-law compressed spectra; L_Sup (optional): its one-sided part that
  costs only the speech the estimate takes away.
- L_PESQ (optional): P.862's disturbances as a loss, from the PyPI package ``torch-pesq`` (imported when used).
- L_Eff = (sum_j Y_j u_j - u_target)^2 pulls the mean utilization to the target.
- L_Bal = (J sum_j Y_j^2 - 1) / (J - 1): 0 when every factor is used equally, 1 when one takes every frame.
Y_j is the fraction of router frames that chose factor j, from the straight-through one-hots (so it
carries gradient to the router); ``choice_fractions`` computes it.

Imports only torch at load time: this file travels to the Hub next to the model as remote code.
"""

import torch
import torch.nn.functional as F

STFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))  # (n_fft, hop, window length)
MAGNITUDE_FLOOR = 1e-7  # clamp of the squared magnitude (so |X| >= sqrt(1e-7)), as denoiser's stft_loss


def _check_pair(estimate: torch.Tensor, target: torch.Tensor) -> None:
    """Both [B, T] or both [T], same shape; else a ValueError naming both shapes."""
    if estimate.shape != target.shape:
        raise ValueError(
            f"estimate and target must have the same shape, got estimate {list(estimate.shape)} and target "
            f"{list(target.shape)}."
        )
    if estimate.dim() not in (1, 2):
        raise ValueError(f"estimate and target must be [batch, samples] or [samples], got {list(estimate.shape)}.")


def _check_mask(mask: torch.Tensor | None, signal: torch.Tensor, name: str) -> torch.Tensor | None:
    """A [B, T] (or [T]) mask of the signal's shape, 1 = real sample -> the mask in the signal's dtype."""
    if mask is None:
        return None
    if mask.shape != signal.shape:
        raise ValueError(f"{name} must have the shape of the signals {list(signal.shape)}, got {list(mask.shape)}.")
    return mask.to(device=signal.device, dtype=signal.dtype)


class _ClampedMagnitude(torch.autograd.Function):
    """frames [..., n] -> sqrt(max(|rfft(frames)|^2, MAGNITUDE_FLOOR)) [..., n // 2 + 1].

    The backward is written out because torch's backward of ``rfft`` zero-fills the full spectrum and runs a
    complex FFT over it; here it is one inverse real FFT. For power P_k = |X_k|^2 of real frames x,
    dP_k / dx_t = 2 Re(X_k e^{2 pi i k t / n}), and n * irfft(Z)_t = Re Z_0 + Re Z_{n/2} (-1)^t
    + 2 Re sum_{0 < k < n/2} Z_k e^{2 pi i k t / n}: so dL/dx = n * irfft(dL/dP * X * c) with c = 2 at bins 0
    and n/2 and 1 elsewhere. Gradients equal torch.stft's to float64 rounding (tests/test_losses.py)."""

    @staticmethod
    def forward(ctx, frames: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(frames)  # [..., bins] complex
        power = spectrum.real.square() + spectrum.imag.square()
        magnitude = torch.sqrt(torch.clamp(power, min=MAGNITUDE_FLOOR))
        ctx.save_for_backward(spectrum, power, magnitude)
        ctx.length = frames.shape[-1]
        return magnitude

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        spectrum, power, magnitude = ctx.saved_tensors
        n = ctx.length
        grad_power = torch.where(power >= MAGNITUDE_FLOOR, grad / (2 * magnitude), 0.0)  # clamp passes >= min
        scale = torch.full((spectrum.shape[-1],), float(n), dtype=grad.dtype, device=grad.device)
        scale[0] = 2 * n
        if n % 2 == 0:
            scale[-1] = 2 * n
        return torch.fft.irfft(spectrum * (grad_power * scale), n)


def _magnitude(signal: torch.Tensor, n_fft: int, hop: int, window_length: int) -> torch.Tensor:
    """[B, T] -> |STFT| [B, frames, bins] with a Hann window, magnitudes clamped at sqrt(MAGNITUDE_FLOOR).

    torch.stft(center=True, reflect padding, the window zero-padded to n_fft in the middle), framed by hand
    so that the backward is the cheap one of ``_ClampedMagnitude``."""
    window = torch.hann_window(window_length, device=signal.device, dtype=signal.dtype)
    left = (n_fft - window_length) // 2
    window = F.pad(window, (left, n_fft - window_length - left))  # [n_fft]
    padded = F.pad(signal[:, None], (n_fft // 2, n_fft // 2), mode="reflect")[:, 0]  # [B, T + 2 * (n_fft // 2)]
    frames = padded.unfold(-1, n_fft, hop) * window  # [B, 1 + T // hop, n_fft]
    return _ClampedMagnitude.apply(frames)


def stft_magnitudes(signal: torch.Tensor, resolutions=STFT_RESOLUTIONS, mask: torch.Tensor | None = None
                    ) -> list[torch.Tensor]:
    """[B, T] or [T] (times ``mask`` when given) -> one |STFT| [B, frames, bins] per resolution: the target's
    half of :func:`multi_resolution_stft_loss`, to compute once when several estimates meet one target
    (pass it as ``target_magnitudes``)."""
    mask = _check_mask(mask, signal, "mask")
    if mask is not None:
        signal = signal * mask
    signal = signal.reshape(-1, signal.shape[-1])  # [B, T]
    return [_magnitude(signal, n_fft, hop, window_length) for n_fft, hop, window_length in resolutions]


def multi_resolution_stft_loss(
    estimate: torch.Tensor,
    target: torch.Tensor,
    resolutions=STFT_RESOLUTIONS,
    sc_factor: float = 0.1,
    mag_factor: float = 0.1,
    mask: torch.Tensor | None = None,
    target_magnitudes: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """sc_factor * spectral convergence + mag_factor * log-magnitude L1, each averaged over the resolutions.

    Per resolution (n_fft, hop, window length), with Hann windows and centred frames:
    spectral convergence ||(|Y| - |X|)||_F / ||Y||_F over the whole batch (Y the target, X the estimate) and
    mean |log |Y| - log |X||; magnitudes are clamped at sqrt(1e-7). This is denoiser's
    ``MultiResolutionSTFTLoss`` (returned there as the two scaled terms; here their sum).

    Args:
        estimate, target: [B, T] or [T].
        resolutions: (n_fft, hop, window length) triples; T must exceed n_fft // 2 (reflect padding).
        mask: optional [B, T] (or [T]) padding mask, 1 = real sample: both signals are zeroed where it is 0, so
            what lies in the padding cannot change the loss (padded frames add zero error; they still count in
            the log-magnitude mean, as they would with zero padding in denoiser).
        target_magnitudes: optional ``stft_magnitudes(target, resolutions, mask)``, computed once for several
            estimates of one target (stage-1 training); ``target`` is then not transformed again.

    Returns:
        a scalar tensor.
    """
    convergence, log_magnitude = stft_loss_terms(estimate, target, resolutions, mask, target_magnitudes)
    return sc_factor * convergence + mag_factor * log_magnitude


def stft_loss_terms(
    estimate: torch.Tensor,
    target: torch.Tensor,
    resolutions=STFT_RESOLUTIONS,
    mask: torch.Tensor | None = None,
    target_magnitudes: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of :func:`multi_resolution_stft_loss`, unweighted and each averaged over the resolutions:
    (spectral convergence, log-magnitude L1), as scalar tensors. Arguments as there."""
    _check_pair(estimate, target)
    if target_magnitudes is None:
        target_magnitudes = stft_magnitudes(target, resolutions, mask)
    elif len(target_magnitudes) != len(resolutions):
        raise ValueError(f"target_magnitudes has {len(target_magnitudes)} entries for {len(resolutions)} resolutions.")
    estimate_magnitudes = stft_magnitudes(estimate, resolutions, mask)
    convergence = magnitude = estimate.new_zeros(())
    for est, ref in zip(estimate_magnitudes, target_magnitudes):  # [B, F, n_fft // 2 + 1] each
        convergence = convergence + torch.linalg.norm(ref - est) / torch.linalg.norm(ref)
        magnitude = magnitude + F.l1_loss(torch.log(est), torch.log(ref))
    return convergence / len(resolutions), magnitude / len(resolutions)


def speech_enhancement_loss(
    estimate: torch.Tensor,
    target: torch.Tensor,
    sc_factor: float = 0.1,
    mag_factor: float = 0.1,
    padding_mask: torch.Tensor | None = None,
    target_magnitudes: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """L_SE: L1 on the waveform plus the multi-resolution STFT loss (skipped when both factors are 0).

    The defaults 0.1 / 0.1 are denoiser's causal VoiceBank recipe.

    Args:
        estimate, target: [B, T] or [T].
        padding_mask: optional [B, T] (or [T]), 1 = real sample. The L1 is the mean over real samples only, and
            both signals are zeroed past each item's end before the STFTs.
        target_magnitudes: optional ``stft_magnitudes(target, mask=padding_mask)`` shared by several estimates.

    Returns:
        a scalar tensor.
    """
    _check_pair(estimate, target)
    mask = _check_mask(padding_mask, estimate, "padding_mask")
    if mask is None:
        loss = F.l1_loss(estimate, target)
    else:
        if not mask.any():
            raise ValueError("padding_mask marks no real sample: there is nothing to compare.")
        estimate, target = estimate * mask, target * mask
        loss = (estimate - target).abs().sum() / mask.sum()
    if sc_factor or mag_factor:  # (both signals are already masked)
        loss = loss + multi_resolution_stft_loss(estimate, target, sc_factor=sc_factor, mag_factor=mag_factor,
                                                 target_magnitudes=target_magnitudes)
    return loss


def polarity_loss(estimate: torch.Tensor, target: torch.Tensor, padding_mask: torch.Tensor | None = None,
                  eps: float = 1e-8) -> torch.Tensor:
    """L_Pol = mean over items of max(0, -cos(estimate, target)): 0 while every estimate correlates
    non-negatively with its target, 1 for an exactly inverted one.

    The multi-resolution STFT loss is blind to the sign of the waveform and the L1 term is small beside it, so
    without this term a width of a slimmable backbone can converge to -clean (seen at widths 0.125 and 0.25 of
    a stage-1 run); PESQ, STOI and SI-SDR are blind to the sign too, but mixing such a width with another (per
    router frame, or with the dry input) cancels the speech.

    Args:
        estimate, target: [B, T] or [T].
        padding_mask: optional [B, T] (or [T]), 1 = real sample (both signals are zeroed past each item's end).

    Returns:
        a scalar tensor.
    """
    _check_pair(estimate, target)
    mask = _check_mask(padding_mask, estimate, "padding_mask")
    if mask is not None:
        estimate, target = estimate * mask, target * mask
    cosine = (estimate * target).sum(-1) / (estimate.norm(dim=-1) * target.norm(dim=-1) + eps)
    return F.relu(-cosine).mean()


def pause_residual_loss(estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor, frame: int = 320,
                        pause_db: float = 40.0, padding_mask: torch.Tensor | None = None,
                        eps: float = 1e-8) -> torch.Tensor:
    """L_Pause: how much of the noise the estimate lets through where the target is silent, bounded in
    [0, 1): with E the estimate's energy over the pauses and N the noisy input's, E / (E + N), mean over the
    items that have pauses (0 = silent pauses, 0.5 = the noise passed through unchanged, 0.091 = pushed down
    by 10 dB, 0.0099 by 20 dB). The bounded form matters: the plain ratio E / N explodes on clips whose
    noise is faint, and did so in training (losses in the thousands within 20 steps).

    A pause is a whole frame of ``frame`` samples whose target energy lies at least ``pause_db`` below the
    item's loudest target frame. L1 and the STFT terms average over every sample and bin, so the few pause
    frames of a segment weigh little in them; PESQ hears residual noise there (scripts/residual_breakdown.py
    measures it on test clips).

    Args:
        estimate, target, noisy: [B, T] or [T].
        frame: frame length in samples (20 ms at 16 kHz by default); a trailing part frame is left out.
        padding_mask: optional [B, T] (or [T]), 1 = real sample: padded samples are zeroed in all three
            signals, so padded frames carry no noisy energy and add nothing.

    Returns:
        a scalar tensor (0 when no item has a pause).
    """
    _check_pair(estimate, target)
    _check_pair(noisy, target)
    mask = _check_mask(padding_mask, estimate, "padding_mask")
    if mask is not None:
        estimate, target, noisy = estimate * mask, target * mask, noisy * mask
    estimate, target, noisy = (s.reshape(-1, s.shape[-1]) for s in (estimate, target, noisy))  # [B, T]
    count = target.shape[-1] // frame
    if count == 0:
        raise ValueError(f"pause_residual_loss needs at least one frame of {frame} samples, got {target.shape[-1]}.")

    def frame_energy(signal: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, count]
        return signal[:, : count * frame].reshape(signal.shape[0], count, frame).pow(2).sum(-1)

    target_energy = frame_energy(target)
    pause = (target_energy < target_energy.amax(-1, keepdim=True) * 10 ** (-pause_db / 10)).to(estimate.dtype)
    noisy_pause = (frame_energy(noisy) * pause).sum(-1)  # [B]
    left = (frame_energy(estimate) * pause).sum(-1)  # [B]
    has_pause = noisy_pause > eps
    if not has_pause.any():
        return estimate.sum() * 0.0
    left, noisy_pause = left[has_pause], noisy_pause[has_pause]
    return (left / (left + noisy_pause)).mean()


def _compressed_spectrum(signal: torch.Tensor, n_fft: int, hop: int, power: float):
    """Power-law compressed STFT of signal [B, T] (Hann window): (complex values |X|^p e^{i angle X} as real
    pairs [B, F, N, 2], magnitudes |X|^p [B, F, N]), with |X| taken as sqrt(|X|^2 + 1e-12) so silence has a
    finite gradient."""
    window = torch.hann_window(n_fft, device=signal.device, dtype=torch.float32)
    spectrum = torch.view_as_real(torch.stft(signal.float().reshape(-1, signal.shape[-1]), n_fft, hop,
                                             window=window, return_complex=True))
    magnitude = torch.sqrt(spectrum.pow(2).sum(-1) + 1e-12)
    return spectrum * magnitude.pow(power - 1)[..., None], magnitude.pow(power)


def compressed_spectral_terms(estimate: torch.Tensor, target: torch.Tensor, padding_mask: torch.Tensor | None = None,
                              n_fft: int = 512, hop: int = 128, power: float = 0.3, complex_share: float = 0.3
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_Cmp, L_Sup, L_Voice) from one pair of compressed spectra (Hann window, one resolution, exponent
    p = ``power``).

    - L_Cmp: mean squared error between the compressed spectra, ``complex_share`` of it on the compressed complex
      values |X|^p e^{i angle X} and the rest on the compressed magnitudes |X|^p: the loss GTCRN and
      DeepFilterNet train with. 0 when the estimate equals the target.
    - L_Sup: the asymmetric half of its magnitude term, mean of max(|S|^p - |S_hat|^p, 0)^2 over the
      time-frequency bins: it costs only the bins where the estimate S_hat holds less than the target S (speech
      taken away), never the ones where it holds more (noise left in). Added beside L_Cmp it makes removing
      speech dearer than keeping noise (the asymmetric loss of Eskimez et al. 2022, "Personalized speech
      enhancement", against over-suppression). 0 when the estimate holds at least the target's magnitude in
      every bin.
    - L_Voice: L_Sup with every frequency bin of every item weighed alike, each bin's squared deficit divided
      by the target's mean |S|^(2p) in that bin over time (plus 1% of its mean over the bins, so that a bin the
      target leaves empty weighs little). Speech holds far less in its 2-8 kHz bins than below 1 kHz, so in
      L_Sup those bins' deficits barely count and a loss that rewards a duller output (L_PESQ) takes them
      away; in L_Voice they count as much as the low bins. 0 as for L_Sup; for a silent output, the share of
      the bins the target fills (at most 1).

    Args:
        estimate, target: [B, T] or [T].
        padding_mask: optional [B, T] (or [T]), 1 = real sample; both signals are zeroed past each item's end.

    Returns:
        two scalar tensors.
    """
    _check_pair(estimate, target)
    mask = _check_mask(padding_mask, estimate, "padding_mask")
    if mask is not None:
        estimate, target = estimate * mask, target * mask
    values, magnitudes = _compressed_spectrum(estimate, n_fft, hop, power)
    target_values, target_magnitudes = _compressed_spectrum(target, n_fft, hop, power)
    compressed = (complex_share * F.mse_loss(values, target_values)
                  + (1 - complex_share) * F.mse_loss(magnitudes, target_magnitudes))
    deficit = (target_magnitudes - magnitudes).clamp(min=0).pow(2)  # [B, F, N]
    level = target_magnitudes.pow(2).mean(dim=-1, keepdim=True)  # [B, F, 1]
    level = level + 0.01 * level.mean(dim=-2, keepdim=True) + 1e-12
    return compressed, deficit.mean(), (deficit / level).mean()


def compressed_spectral_loss(estimate: torch.Tensor, target: torch.Tensor, padding_mask: torch.Tensor | None = None,
                             **kwargs) -> torch.Tensor:
    """L_Cmp alone (``compressed_spectral_terms``, whose keyword arguments it takes)."""
    return compressed_spectral_terms(estimate, target, padding_mask, **kwargs)[0]


def suppression_loss(estimate: torch.Tensor, target: torch.Tensor, padding_mask: torch.Tensor | None = None,
                     **kwargs) -> torch.Tensor:
    """L_Sup alone (``compressed_spectral_terms``, whose keyword arguments it takes)."""
    return compressed_spectral_terms(estimate, target, padding_mask, **kwargs)[1]


def voice_loss(estimate: torch.Tensor, target: torch.Tensor, padding_mask: torch.Tensor | None = None,
               **kwargs) -> torch.Tensor:
    """L_Voice alone (``compressed_spectral_terms``, whose keyword arguments it takes)."""
    return compressed_spectral_terms(estimate, target, padding_mask, **kwargs)[2]


_PESQ_LOSSES = {}  # sample rate -> torch_pesq.PesqLoss, built once per process


def pesq_loss(estimate: torch.Tensor, target: torch.Tensor, sample_rate: int,
              padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_PESQ: the mean over the batch of 0.1 d_sym + 0.0309 d_asym, P.862's disturbances before its mapping to a
    MOS (lower is better; 0 for the target itself), as ``torch_pesq.PesqLoss`` (Schmidt, audiolabs) computes them
    differentiably (no time alignment: fine for an estimate aligned with its target). estimate, target [B, T] at
    ``sample_rate``; computed in float32 outside autocast. Items whose target or estimate is silent (PESQ is
    undefined there: the package divides by their power) are left out; a batch with none left gives 0."""
    _check_pair(estimate, target)
    try:
        from torch_pesq import PesqLoss
    except ImportError as error:
        raise ImportError("pesq_weight > 0 needs the PyPI package torch-pesq: pip install 'adaslim_hf[train]' "
                          "(or pip install torch-pesq)") from error
    if sample_rate not in _PESQ_LOSSES:
        _PESQ_LOSSES[sample_rate] = PesqLoss(1.0, sample_rate=sample_rate)
    module = _PESQ_LOSSES[sample_rate].to(estimate.device)
    mask = _check_mask(padding_mask, estimate, "padding_mask")
    with torch.autocast(estimate.device.type, enabled=False):
        estimate, target = estimate.float(), target.float()
        if mask is not None:
            estimate, target = estimate * mask, target * mask
        with torch.no_grad():
            audible = (target.square().mean(dim=-1) > 1e-10) & (estimate.square().mean(dim=-1) > 1e-10)
        if not bool(audible.any()):
            return estimate.sum() * 0.0
        return module(target[audible], estimate[audible]).mean().to(estimate.dtype)


def si_sdr(estimate: torch.Tensor, target: torch.Tensor, zero_mean: bool = True, eps: float = 1e-8,
           padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, per item: [B, T] -> [B], or [T] -> [].

    SI-SDR = 10 log10(||a s||^2 / ||a s - e||^2) with a = <e, s> / ||s||^2 (e the estimate, s the target),
    after removing each signal's mean when ``zero_mean``. ``eps`` keeps silent or perfect inputs finite.
    ``padding_mask`` (optional, [B, T] or [T], 1 = real sample): only each item's real samples count (means
    included), as if the item were cut at its end.
    """
    _check_pair(estimate, target)
    mask = _check_mask(padding_mask, estimate, "padding_mask")
    if mask is not None:
        estimate, target = estimate * mask, target * mask
    if zero_mean:
        count = estimate.shape[-1] if mask is None else mask.sum(dim=-1, keepdim=True).clamp(min=1)
        estimate = estimate - estimate.sum(dim=-1, keepdim=True) / count
        target = target - target.sum(dim=-1, keepdim=True) / count
        if mask is not None:
            estimate, target = estimate * mask, target * mask
    scale = (estimate * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + eps)
    projection = scale * target  # the part of the estimate along the target
    distortion = estimate - projection
    return 10 * torch.log10((projection.pow(2).sum(-1) + eps) / (distortion.pow(2).sum(-1) + eps))


def si_sdr_loss(estimate: torch.Tensor, target: torch.Tensor, zero_mean: bool = True,
                padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Negative mean SI-SDR (dB) over the batch, a loss to minimise. Inputs [B, T] or [T] (``padding_mask``
    as in :func:`si_sdr`)."""
    return -si_sdr(estimate, target, zero_mean=zero_mean, padding_mask=padding_mask).mean()


def choice_fractions(one_hot: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Y_j: the fraction of valid router frames that chose factor j.

    Args:
        one_hot: [B, N, J] per-frame choices (the straight-through one-hots, so Y carries their gradient; soft
            probabilities give the mean probability instead).
        frame_mask: optional [B, N], 1 = a real frame; padded frames are left out.

    Returns:
        [J], summing to 1 for one-hot inputs.
    """
    if one_hot.dim() != 3:
        raise ValueError(f"one_hot must have shape [batch, frames, factors], got {list(one_hot.shape)}.")
    if frame_mask is None:
        frames = one_hot.shape[0] * one_hot.shape[1]
    else:
        if frame_mask.shape != one_hot.shape[:2]:
            raise ValueError(
                f"frame_mask must have shape [batch, frames] = {list(one_hot.shape[:2])}, got {list(frame_mask.shape)}."
            )
        frame_mask = frame_mask.to(device=one_hot.device, dtype=one_hot.dtype)
        one_hot = one_hot * frame_mask[..., None]
        frames = frame_mask.sum()
    if not frames:
        raise ValueError("choice_fractions needs at least one valid frame, got none.")
    return one_hot.sum(dim=(0, 1)) / frames  # [J]


def efficiency_loss(frame_fractions: torch.Tensor, factors, target: float) -> torch.Tensor:
    """L_Eff = (sum_j Y_j u_j - target)^2, the squared distance of the mean utilization from the target.

    Args:
        frame_fractions: Y, [J] or [B, J] (then the loss is averaged over B).
        factors: the J utilization factors u_j (a sequence or a tensor).
        target: the target mean utilization.

    Returns:
        a scalar tensor.
    """
    if frame_fractions.dim() not in (1, 2):
        raise ValueError(f"frame_fractions must be [factors] or [batch, factors], got {list(frame_fractions.shape)}.")
    factors = torch.as_tensor(factors, dtype=frame_fractions.dtype, device=frame_fractions.device)
    if factors.dim() != 1 or frame_fractions.shape[-1] != factors.numel():
        raise ValueError(
            f"frame_fractions has {frame_fractions.shape[-1]} factors but factors has shape {list(factors.shape)}."
        )
    return ((frame_fractions * factors).sum(-1) - target).pow(2).mean()


def balance_loss(frame_fractions: torch.Tensor) -> torch.Tensor:
    """L_Bal = (J sum_j Y_j^2 - 1) / (J - 1): 0 when every factor takes 1/J of the frames, 1 when one factor
    takes every frame, and 0 when there is a single factor (J = 1).

    Args:
        frame_fractions: Y, [J] or [B, J] (then the loss is averaged over B).

    Returns:
        a scalar tensor.
    """
    if frame_fractions.dim() not in (1, 2):
        raise ValueError(f"frame_fractions must be [factors] or [batch, factors], got {list(frame_fractions.shape)}.")
    count = frame_fractions.shape[-1]
    if count == 1:
        return frame_fractions.sum() * 0  # zero, still attached to the graph
    return ((count * frame_fractions.pow(2).sum(-1) - 1) / (count - 1)).mean()


def share_floor_loss(frame_fractions: torch.Tensor, min_share: float) -> torch.Tensor:
    """L_Share = sum_j max(0, m - Y_j) / m: 0 while every factor takes at least the share m of the frames, 1 when
    one factor takes none (not in the paper). L_Bal pulls towards uniform use, which a low target forbids: at
    target 0.25 with factors 0.125/0.25/0.5/1.0 the shares that minimise L_Bal at that mean give factor 1.0
    none of the frames, so L_Bal alone lets the widest factor collapse. This hinge keeps a floor under each.

    Args:
        frame_fractions: Y, [J] or [B, J] (then the loss is averaged over B).
        min_share: m, in (0, 1 / J].

    Returns:
        a scalar tensor (zero, still attached to the graph, when m is 0).
    """
    if frame_fractions.dim() not in (1, 2):
        raise ValueError(f"frame_fractions must be [factors] or [batch, factors], got {list(frame_fractions.shape)}.")
    count = frame_fractions.shape[-1]
    if not 0 <= min_share <= 1 / count:
        raise ValueError(f"min_share must lie in [0, 1/{count}] for {count} factors, got {min_share}.")
    if min_share == 0:
        return frame_fractions.sum() * 0
    return ((min_share - frame_fractions).clamp(min=0).sum(-1) / min_share).mean()


# ----------------------------------------------------------------------------------------------------
# The model's objective, from its config's weights
# ----------------------------------------------------------------------------------------------------


def enhancement_losses(config, estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor,
                       padding_mask: torch.Tensor | None = None, target_magnitudes=None):
    """(L_SE, L_Pol) of an enhanced batch, with the optional SI-SDR, pause and compressed-spectrum terms added to
    L_SE at the config's weights (``si_sdr_weight``, ``pause_weight``, ``compressed_weight``,
    ``suppression_weight``, ``voice_weight``, the three from one pair of spectra, and ``pesq_weight``).
    estimate, target, noisy [B, T]; ``padding_mask`` [B, T] (1 = real sample) applies to every term;
    ``target_magnitudes``: ``stft_magnitudes(target)`` computed before (``AdaSlimModel.share_inputs``)."""
    se_loss = speech_enhancement_loss(estimate, target, sc_factor=config.stft_sc_factor,
                                      mag_factor=config.stft_mag_factor, padding_mask=padding_mask,
                                      target_magnitudes=target_magnitudes)
    if config.si_sdr_weight:
        se_loss = se_loss + config.si_sdr_weight * si_sdr_loss(estimate, target, padding_mask=padding_mask)
    if config.pause_weight:
        se_loss = se_loss + config.pause_weight * pause_residual_loss(
            estimate, target, noisy, frame=config.sample_rate // 50, padding_mask=padding_mask)
    if config.compressed_weight or config.suppression_weight or config.voice_weight:
        compressed, suppression, voice = compressed_spectral_terms(estimate, target, padding_mask)
        se_loss = (se_loss + config.compressed_weight * compressed + config.suppression_weight * suppression
                   + config.voice_weight * voice)
    if config.pesq_weight:
        se_loss = se_loss + config.pesq_weight * pesq_loss(estimate, target, config.sample_rate, padding_mask)
    return se_loss, polarity_loss(estimate, target, padding_mask)


LOG_LOSS_FLOOR = 1e-6  # routed_loss="log": an item's L_SE below this (a silent target) is taken as this


def per_item_enhancement_losses(config, estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor,
                                padding_mask: torch.Tensor | None = None, target_magnitudes=None):
    """(L_SE of each item alone [B], the batch's mean L_Pol of the items): ``enhancement_losses`` on every item
    of the batch as a batch of one. Signals as there."""
    se_losses, pol_losses = [], []
    for item in range(estimate.shape[0]):
        one = slice(item, item + 1)
        magnitudes = None if target_magnitudes is None else [m[one] for m in target_magnitudes]
        se_loss, pol_loss = enhancement_losses(config, estimate[one], target[one], noisy[one],
                                               None if padding_mask is None else padding_mask[one], magnitudes)
        se_losses.append(se_loss)
        pol_losses.append(pol_loss)
    return torch.stack(se_losses), torch.stack(pol_losses).mean()


def routing_losses(config, one_hot: torch.Tensor, frame_mask: torch.Tensor | None = None):
    """(L_Eff, L_Bal, L_Share or None when ``min_factor_share`` is 0) of the router's choices one_hot [B, N, J]
    over the valid router frames ``frame_mask`` [B, N]."""
    fractions = choice_fractions(one_hot, frame_mask)
    factors = torch.tensor(config.utilization_factors, dtype=one_hot.dtype, device=one_hot.device)
    share = share_floor_loss(fractions, config.min_factor_share) if config.min_factor_share else None
    return efficiency_loss(fractions, factors, config.target_utilization), balance_loss(fractions), share


def model_losses(config, estimate: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor,
                 padding_mask: torch.Tensor | None = None, target_magnitudes=None,
                 one_hot: torch.Tensor | None = None, frame_mask: torch.Tensor | None = None) -> dict:
    """Every loss term of ``AdaSlimModel`` and their weighted sum: L_SE + polarity_weight * L_Pol, plus, when
    the router decided (``one_hot`` [B, N, J] given), efficiency_weight * L_Eff + balance_weight * L_Bal
    (+ share_weight * L_Share when min_factor_share > 0). Signals as in ``enhancement_losses``.

    With ``config.routed_loss == "log"`` and the router's choices given, the L_SE that enters the loss is the mean
    over items of log(L_SE of the item alone) instead of the batch's L_SE; ``se_loss`` still reports the mean of
    the items' L_SE.

    Returns ``{"loss", "se_loss", "polarity_loss", "efficiency_loss", "balance_loss", "share_loss"}``, None
    for the terms not computed."""
    if one_hot is not None and config.routed_loss == "log":
        item_se_loss, pol_loss = per_item_enhancement_losses(config, estimate, target, noisy, padding_mask,
                                                             target_magnitudes)
        se_loss = item_se_loss.mean()
        loss = item_se_loss.clamp(min=LOG_LOSS_FLOOR).log().mean()
    else:
        se_loss, pol_loss = enhancement_losses(config, estimate, target, noisy, padding_mask, target_magnitudes)
        loss = se_loss
    loss = loss + config.polarity_weight * pol_loss if config.polarity_weight else loss
    eff_loss = bal_loss = share_loss = None
    if one_hot is not None:
        eff_loss, bal_loss, share_loss = routing_losses(config, one_hot, frame_mask)
        loss = loss + config.efficiency_weight * eff_loss + config.balance_weight * bal_loss
        if share_loss is not None:
            loss = loss + config.share_weight * share_loss
    return {"loss": loss, "se_loss": se_loss, "polarity_loss": pol_loss, "efficiency_loss": eff_loss,
            "balance_loss": bal_loss, "share_loss": share_loss}


__all__ = [
    "STFT_RESOLUTIONS",
    "balance_loss",
    "choice_fractions",
    "compressed_spectral_loss",
    "compressed_spectral_terms",
    "efficiency_loss",
    "enhancement_losses",
    "model_losses",
    "multi_resolution_stft_loss",
    "per_item_enhancement_losses",
    "pause_residual_loss",
    "polarity_loss",
    "routing_losses",
    "share_floor_loss",
    "si_sdr",
    "si_sdr_loss",
    "speech_enhancement_loss",
    "stft_loss_terms",
    "stft_magnitudes",
    "suppression_loss",
    "voice_loss",
]
