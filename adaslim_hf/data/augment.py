"""DEMUCS' training augmentations as small ``nn.Module``s (Defossez et al., Interspeech 2020, Sec. 3).

All of them work on a stack of sources ``[S=2, B, C, T]`` = ``(noise, clean)``, as DEMUCS' solver does:
the noise is ``noisy - clean``, the modules transform the sources, and the training pair is rebuilt as
``noisy = noise + clean``, ``target = clean`` (``augment_pair`` does the stacking and the sum). Working on
sources instead of on ``(noisy, clean)`` is what keeps every augmented pair consistent: whatever is done to
the clean speech is, by construction, also in the noisy input.

Order used by the recipes: ``Remix -> BandMask -> Shift -> RevEcho`` (``build_augmentation``). They are
training-only; ``Shift`` in eval mode crops deterministically and the others are the identity in eval mode.
Each ``forward`` takes an optional ``torch.Generator`` for reproducible draws.

Symbols: S sources (2: noise, clean), B batch, C channels, T samples, K filter taps.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _check_sources(sources: torch.Tensor) -> None:
    if sources.ndim != 4 or sources.shape[0] != 2:
        raise ValueError(
            f"Expected sources of shape [2 (noise, clean), batch, channels, samples], got {list(sources.shape)}."
        )


def _uniform(low: float, high: float, size: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator, device=device)


def fft_convolve(signal: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Full linear convolution along the last axis through the FFT (cheap for long kernels).

    Args:
        signal: [..., T]
        kernel: [..., K], broadcastable against ``signal``'s leading axes.

    Returns:
        [..., T + K - 1]
    """
    length = signal.shape[-1] + kernel.shape[-1] - 1
    size = 1 << (length - 1).bit_length()
    spectrum = torch.fft.rfft(signal, n=size) * torch.fft.rfft(kernel, n=size)
    return torch.fft.irfft(spectrum, n=size)[..., :length]


def lowpass_kernel(cutoff: torch.Tensor, half_width: torch.Tensor) -> torch.Tensor:
    """Windowed-sinc low-pass FIR filters, one per cutoff, zero phase and unit gain at DC.

    The ideal low-pass at normalised cutoff ``f_c`` (cycles per sample, 0 < f_c < 0.5) has impulse
    response ``2 f_c sinc(2 f_c n)``; it is truncated to ``|n| <= half_width`` and tapered with a Hann
    window, which leaves a transition band about ``1 / half_width`` wide.

    Args:
        cutoff: [N] normalised cutoffs.
        half_width: [N] half widths in taps.

    Returns:
        [N, 2 H + 1] kernels, H the largest half width (shorter kernels are zero-padded).
    """
    half = int(half_width.max())
    n = torch.arange(-half, half + 1, device=cutoff.device, dtype=torch.float32)  # [K]
    kernels = 2 * cutoff[:, None] * torch.sinc(2 * cutoff[:, None] * n)  # [N, K]
    own = half_width.to(torch.float32)[:, None]  # [N, 1]
    window = torch.where(n.abs() <= own, 0.5 + 0.5 * torch.cos(math.pi * n / (own + 1)), 0.0)
    kernels = kernels * window
    return kernels / kernels.sum(dim=-1, keepdim=True)


def mel_frequencies(bands: int, low_hz: float, high_hz: float) -> torch.Tensor:
    """``bands`` frequencies equally spaced on the mel scale (O'Shaughnessy: m = 2595 log10(1 + f/700))."""
    to_mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)
    mels = torch.linspace(to_mel(low_hz), to_mel(high_hz), bands)
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


class Remix(nn.Module):
    """Pair every clean signal with the noise of another item of the batch.

    Physics: a noisy recording is (to first order) the sum of speech and noise, ``y = s + n``, so any noise
    over any speech is an equally valid training pair. Permuting the noises across the batch gives B new
    mixtures per batch for free, with new SNRs (each noise keeps its own level, each speech its own), and
    stops the model from memorising which noise came with which utterance.
    """

    def forward(self, sources: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """sources [2, B, C, T] -> [2, B, C, T] with the noise rows permuted across B."""
        _check_sources(sources)
        noise, clean = sources
        permutation = torch.randperm(noise.shape[0], generator=generator, device=noise.device)
        return torch.stack([noise[permutation], clean])


class BandMask(nn.Module):
    """Remove a random band of frequencies from speech and noise alike (waveform-domain SpecAugment).

    Physics: microphones, codecs and transmission channels often lose part of the spectrum. Cutting a band
    of ``bands`` mel-spaced bands between 40 Hz and Nyquist (at most ``maxwidth`` of them) makes the model
    rely on every region of the spectrum rather than a few. The band ``[f_lo, f_hi]`` is removed as the
    difference of two zero-phase low-pass filters: ``x - (LP_hi(x) - LP_lo(x))``. It is applied to both
    sources, so the target keeps matching the input: the model learns to denoise what is there, not to
    hallucinate the missing band.

    Args:
        maxwidth: the largest fraction of the mel bands removed at once (DEMUCS: 0.2).
        bands: number of mel bands (DEMUCS: 120).
        sample_rate: the signals' rate, to place the bands in Hz.
        zeros: filter length in zero crossings of the sinc at the narrower of the lower edge and the band
            width (so even a narrow band at high frequency is resolved), capped at ``max_half_width`` taps.
    """

    def __init__(self, maxwidth: float = 0.2, bands: int = 120, sample_rate: int = 16000, zeros: float = 8.0,
                 max_half_width: int = 4000):
        super().__init__()
        if not 0 < maxwidth <= 1:
            raise ValueError(f"maxwidth must be in (0, 1], got {maxwidth}.")
        if bands < 2:
            raise ValueError(f"bands must be at least 2, got {bands}.")
        self.maxwidth = maxwidth
        self.bands = bands
        self.sample_rate = sample_rate
        self.zeros = zeros
        self.max_half_width = max_half_width

    def forward(self, sources: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """sources [2, B, C, T] -> [2, B, C, T], one random band removed per batch item."""
        _check_sources(sources)
        if not self.training:
            return sources
        batch = sources.shape[1]
        edges = mel_frequencies(self.bands, 40.0, self.sample_rate / 2).to(sources.device) / self.sample_rate
        width = max(1, int(self.maxwidth * self.bands))
        low = torch.randint(0, self.bands - 1, (batch,), generator=generator, device=sources.device)
        span = torch.floor(torch.rand(batch, generator=generator, device=sources.device) * width).long() + 1
        high = torch.clamp(low + span, max=self.bands - 1)
        low_cut, high_cut = edges[low], edges[high].clamp(max=0.499)  # [B], cycles per sample
        # both filters of an item share one length, with a transition narrower than the band itself
        half_width = torch.ceil(self.zeros / (2 * torch.minimum(low_cut, high_cut - low_cut).clamp(min=1e-4)))
        half_width = half_width.clamp(max=self.max_half_width).long()  # [B]
        band_kernel = lowpass_kernel(high_cut, half_width) - lowpass_kernel(low_cut, half_width)  # [B, K]
        half = band_kernel.shape[-1] // 2
        band = fft_convolve(sources, band_kernel[None, :, None, :])[..., half:half + sources.shape[-1]]  # [2, B, C, T]
        return sources - band


class Shift(nn.Module):
    """Random time shift: crop ``T - shift`` samples at a random offset in ``[0, shift)``.

    Physics: speech enhancement is (almost) translation invariant, but a model trained on segments cut
    at fixed positions sees every utterance at the same phase of its stride grid; random offsets remove
    that regularity. With ``same=True`` noise and clean share one offset per item (the original alignment
    of noise to speech is kept); with ``same=False`` each source gets its own offset, which also moves the
    noise relative to the speech (a new mixture, like ``Remix`` in time). Either way the rebuilt pair
    ``noise + clean`` / ``clean`` stays aligned sample for sample.

    In eval mode the first ``T - shift`` samples are kept, so train and eval outputs have one length.
    """

    def __init__(self, shift: int = 8192, same: bool = False):
        super().__init__()
        if shift < 0:
            raise ValueError(f"shift must be >= 0, got {shift}.")
        self.shift = int(shift)
        self.same = same

    def forward(self, sources: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """sources [2, B, C, T] -> [2, B, C, T - shift]."""
        _check_sources(sources)
        if self.shift == 0:
            return sources
        sources_count, batch, channels, length = sources.shape
        if length <= self.shift:
            raise ValueError(f"Shift({self.shift}) needs segments longer than {self.shift} samples, got {length}.")
        out_length = length - self.shift
        if not self.training:
            return sources[..., :out_length]
        rows = 1 if self.same else sources_count
        offsets = torch.randint(0, self.shift, (rows, batch, 1, 1), generator=generator, device=sources.device)
        index = offsets + torch.arange(out_length, device=sources.device)  # [rows, B, 1, T']
        index = index.expand(sources_count, batch, channels, out_length)
        return torch.gather(sources, -1, index)


class RevEcho(nn.Module):
    """Synthetic reverberation: trains of decaying echoes added to noise and (mostly) to the input only.

    Physics: in a room the microphone receives the direct sound followed by reflections. After a first
    reflection ``first_delay`` seconds later (10-30 ms, the early reflections of a room a few metres
    across) the reflections keep arriving about every ``first_delay`` seconds (jittered by ``jitter``)
    with an amplitude that decays exponentially: the energy falls 60 dB in ``rt60`` seconds (Sabine's
    reverberation time), i.e. an echo ``t`` seconds after the direct sound has amplitude
    ``initial * 10 ** (-3 t / rt60)``. ``repeat`` independent trains are averaged, which blurs the echoes
    into a denser, more diffuse tail. The tail is built as one impulse response per item and applied by FFT
    convolution.

    The reverberated noise stays in the noise. Of the clean speech's reverberation a fraction
    ``keep_clean`` is kept in the target and the rest goes to the noise: the model learns to remove most
    reverberation without being asked to produce a perfectly dry signal that was never recorded.

    Args:
        proba: probability that an item is reverberated (DEMUCS passes the config's ``revecho`` here).
        initial: amplitude of the first echo relative to the direct sound.
        rt60: (min, max) reverberation time in seconds, drawn uniformly per item.
        first_delay: (min, max) delay of the first echo in seconds.
        repeat: number of echo trains averaged.
        jitter: relative jitter of each echo's delay.
        keep_clean: fraction of the clean speech's reverberation kept in the target.
        sample_rate: the signals' rate.
    """

    def __init__(self, proba: float = 0.5, initial: float = 0.3, rt60: tuple[float, float] = (0.3, 1.3),
                 first_delay: tuple[float, float] = (0.01, 0.03), repeat: int = 3, jitter: float = 0.1,
                 keep_clean: float = 0.1, sample_rate: int = 16000):
        super().__init__()
        if not 0 <= proba <= 1:
            raise ValueError(f"proba must be in [0, 1], got {proba}.")
        if not 0 <= keep_clean <= 1:
            raise ValueError(f"keep_clean must be in [0, 1], got {keep_clean}.")
        if not 0 < rt60[0] <= rt60[1] or not 0 < first_delay[0] <= first_delay[1]:
            raise ValueError(f"rt60 {rt60} and first_delay {first_delay} must be increasing positive ranges.")
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}.")
        self.proba = proba
        self.initial = initial
        self.rt60 = rt60
        self.first_delay = first_delay
        self.repeat = repeat
        self.jitter = jitter
        self.keep_clean = keep_clean
        self.sample_rate = sample_rate

    def impulse_responses(self, batch: int, generator: torch.Generator | None = None,
                          device: torch.device | str = "cpu") -> torch.Tensor:
        """The reverberation tails (no direct path) of ``batch`` random rooms: [B, K]."""
        device = torch.device(device)
        rt60 = _uniform(*self.rt60, (batch, 1), generator, device)  # [B, 1] seconds
        delay = _uniform(*self.first_delay, (batch, 1), generator, device)  # [B, 1] seconds
        # enough echoes to reach 60 dB of decay (t = rt60) with the shortest jittered delay
        echoes = math.ceil(self.rt60[1] / (self.first_delay[0] * (1 - self.jitter))) + 1
        length = math.ceil(self.rt60[1] * self.sample_rate) + 1
        response = torch.zeros(batch, length, device=device)
        for _ in range(self.repeat):
            steps = delay * (1 + self.jitter * _uniform(-1.0, 1.0, (batch, echoes), generator, device))  # [B, E]
            times = torch.cumsum(steps, dim=1)  # [B, E] seconds after the direct sound
            amplitude = self.initial * 10.0 ** (-3.0 * times / rt60)  # 60 dB down at t = rt60
            amplitude = torch.where(times <= rt60, amplitude, torch.zeros_like(amplitude))
            index = torch.clamp(torch.round(times * self.sample_rate).long(), max=length - 1)
            response.scatter_add_(1, index, amplitude)
        return response / self.repeat

    def forward(self, sources: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """sources [2, B, C, T] -> [2, B, C, T]."""
        _check_sources(sources)
        if not self.training or self.proba == 0:
            return sources
        noise, clean = sources
        batch, length = sources.shape[1], sources.shape[-1]
        chosen = torch.rand(batch, generator=generator, device=sources.device) < self.proba  # [B]
        if not bool(chosen.any()):
            return sources
        response = self.impulse_responses(batch, generator, sources.device) * chosen[:, None]  # [B, K]
        response = response[:, None, :]  # [B, 1, K]
        noise_tail = fft_convolve(noise, response)[..., :length]
        clean_tail = fft_convolve(clean, response)[..., :length]
        noise = noise + noise_tail + (1 - self.keep_clean) * clean_tail
        clean = clean + self.keep_clean * clean_tail
        return torch.stack([noise, clean])


class Augmentation(nn.Module):
    """A chain of augmentations applied in order to ``[2, B, C, T]`` sources (one generator for all)."""

    def __init__(self, *modules: nn.Module):
        super().__init__()
        self.steps = nn.ModuleList(modules)

    def forward(self, sources: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for step in self.steps:
            sources = step(sources, generator=generator)
        return sources


def build_augmentation(*, remix: bool = False, bandmask: float = 0.0, shift: int = 0, shift_same: bool = False,
                       revecho: float = 0.0, sample_rate: int = 16000) -> Augmentation:
    """The DEMUCS chain from its config flags (Valentini causal recipe: ``remix=True, bandmask=0.2,
    shift=8000, shift_same=True``; DNS recipe: ``revecho=1, shift=16000, shift_same=True``)."""
    steps: list[nn.Module] = []
    if remix:
        steps.append(Remix())
    if bandmask:
        steps.append(BandMask(maxwidth=bandmask, sample_rate=sample_rate))
    if shift:
        steps.append(Shift(shift, same=shift_same))
    if revecho:
        steps.append(RevEcho(proba=revecho, sample_rate=sample_rate))
    return Augmentation(*steps)


def augment_pair(augmentation: nn.Module, noisy: torch.Tensor, clean: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply an augmentation to a batch of pairs through the (noise, clean) stack.

    Args:
        noisy, clean: [B, T] or [B, C, T], unpadded (equal-length segments).

    Returns:
        ``(noisy, clean)`` of the same rank, rebuilt as ``noise + clean`` and ``clean`` (the length changes
        only through ``Shift``).
    """
    if noisy.shape != clean.shape:
        raise ValueError(f"noisy {list(noisy.shape)} and clean {list(clean.shape)} must have the same shape.")
    if noisy.ndim not in (2, 3):
        raise ValueError(f"Expected [B, T] or [B, C, T] signals, got shape {list(noisy.shape)}.")
    flat = noisy.ndim == 2
    if flat:
        noisy, clean = noisy[:, None], clean[:, None]
    sources = torch.stack([noisy - clean, clean])  # [2, B, C, T]
    if isinstance(augmentation, (Augmentation, Remix, BandMask, Shift, RevEcho)):
        sources = augmentation(sources, generator=generator)
    else:  # any other module on [2, B, C, T], e.g. an nn.Sequential of these
        sources = augmentation(sources)
    noise, clean = sources
    noisy = noise + clean
    if flat:
        noisy, clean = noisy[:, 0], clean[:, 0]
    return noisy, clean
