"""Configuration of the adaptive-slimming DEMUCS (arXiv 2507.04879).

Every architectural number lives here. Backbone fields keep the names of facebookresearch/denoiser's
``Demucs`` (``hidden``, ``depth``, ``kernel_size``, ``stride``, ``resample``, ``growth``, ``causal``,
``glu``, ``normalize``, ``floor``, ``rescale``), so a denoiser recipe reads the same here.

This file imports only the standard library and transformers: it travels to the Hub as remote code.
"""

import math

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# the loss weights, each >= 0; they only shape training (``training.settings.TRAINING_ONLY_FIELDS``)
LOSS_WEIGHTS = ("efficiency_weight", "balance_weight", "min_factor_share", "share_weight", "stft_sc_factor",
                "stft_mag_factor", "polarity_weight", "si_sdr_weight", "pause_weight", "compressed_weight",
                "suppression_weight", "voice_weight", "pesq_weight")
# how the router's term averages L_SE over a batch (``routed_loss``): the paper's batch mean, or the mean of each
# item's log
ROUTED_LOSSES = ("mean", "log")
# fields that take any real number: typed `float | int`, so that `efficiency_weight=3` is accepted, and stored as
# floats
FLOAT_FIELDS = ("rescale", "floor", "gumbel_temperature", "target_utilization", *LOSS_WEIGHTS)


def parse_utilization(value, factors=None, *, what: str = "utilization", expected: str | None = None) -> float | None:
    """A utilization as a caller writes it -> ``None`` for the router (``"auto"`` in any case, or ``None``) or a
    float. With ``factors``, the number must be one of them (to 1e-9) and the configured value comes back.

    The one parser of "auto" for the pipeline, the streamer, ``adaslim stream`` and the demo. Anything else
    (text that is no number, a bool, a number outside ``factors``) raises
    ``ValueError("<what> must be 'auto' or <expected>, got <value!r>.")``; ``expected`` defaults to
    "a number", or "one of the factors [...]" with ``factors``.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if expected is None:
        expected = "a number" if factors is None else f"one of the factors {list(factors)}"
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is not None and factors is not None:
        number = next((float(factor) for factor in factors if abs(number - factor) < 1e-9), None)
    if number is None:
        raise ValueError(f"{what} must be 'auto' or {expected}, got {value!r}.")
    return number

@strict
class AdaSlimConfig(PreTrainedConfig):
    r"""
    Slimmable causal DEMUCS plus a per-frame utilization router.

    Backbone (denoiser's ``Demucs`` names and meaning):
        chin / chout (`int`, defaults to 1): input / output audio channels of the network.
        hidden (`int`, defaults to 32): channels of the first encoder block (the paper's H).
        depth (`int`, defaults to 5): number of encoder (and decoder) blocks.
        kernel_size / stride (`int`, defaults to 8 / 4): every block's conv; ``kernel_size`` must be a
            multiple of ``stride`` (the fast path writes a strided conv as ``kernel_size // stride`` matmuls).
        causal (`bool`, defaults to True): unidirectional recurrent parts (bottleneck and router).
        resample (`int`, 1, 2 or 4): sinc up-sampling factor before the encoder.
        growth (`float`, defaults to 2): channel growth per block; ``max_hidden`` caps it.
        normalize (`bool`): divide the input by its standard deviation + ``floor``, undo at the output.
        glu (`bool`): GLU after each 1x1 conv (``False``: ReLU and no channel doubling).
        rescale (`float`): DEMUCS weight rescaling reference at initialisation (0 disables).
        sample_rate (`int`, defaults to 16000): the rate the model was built and trained for.

    Slimming:
        utilization_factors (`tuple[float]`, defaults to (0.125, 0.25, 0.5, 1.0)): the widths a block may
            run at, strictly increasing in (0, 1]. A block at factor u keeps the first ``floor(C * u)``
            channels of its internal feature space; inputs, outputs and skips stay full width.
        width_gains (`bool`, defaults to False): every block holds a gain per output channel for each narrower
            factor, folded into its sliced weights (1 at the start; the full width never uses them; no
            multiply-add at inference). A sliced block's outputs come out at another scale than the full
            block's and a network without normalization has nothing else to correct it; off (the paper's
            architecture) by default. May be switched on when training starts from a model without them.

    Bottleneck:
        bottleneck (`str`): ``"gru"`` (the paper's split -> GRU per group -> concatenate) or ``"lstm"``
            (exact DEMUCS, used to convert denoiser checkpoints).
        bottleneck_groups (`int`, defaults to 4): channel groups of the grouped GRU.
        bottleneck_layers (`int`, optional): recurrent layers; defaults to 1 for ``"gru"``, 2 for ``"lstm"``.
        slim_bottleneck (`bool`, defaults to False): slim the grouped GRU with the factor too (the paper leaves
            the bottleneck whole; this is its open question, off by default): a frame at factor u runs the
            first ``ceil(u * bottleneck_groups)`` groups (``bottleneck_active_groups``); the other groups hold
            their state over it and put out zeros. Needs the one-layer causal ``"gru"``. May be switched on
            when training starts from a model without it (it adds no parameters).

    Router (Conv1d -> ReLU -> diagonal GRU -> pointwise Conv1d):
        router_channels (`int`, defaults to 8): output channels of the router's front-end conv.
        router_hidden (`int`, defaults to 8): units of the diagonal GRU.
        router_stride (`int`, defaults to 1): bottleneck frames per router decision. One bottleneck frame is
            ``total_stride`` input samples (256 = 16 ms at 16 kHz for the defaults). Router frame r governs
            the frames of every block that lie under input samples [r * router_hop, (r + 1) * router_hop).
        router_delay (`int`, defaults to 1): router frames by which a decision lags the input it is computed
            from: decision r reads input samples [(r - d) * router_hop, (r - d + 1) * router_hop) (zeros before
            the start). With 1, every decision is known before the first frame it governs is computable, so
            streaming with the router adds no latency to the static model's; with 0 the router reads the hop
            it governs, and a stream waits one hop longer for each decision.
        gumbel_temperature (`float`, defaults to 1.0): straight-through Gumbel-softmax temperature (training).
        default_utilization (`float`, *optional*): the factor that `utilization=None` (the pipeline's, the CLI's
            and streaming's "auto") runs instead of routing. Training sets it for a model whose router it never
            trained: stage 1 saves the largest factor, a static run its own factor; stage 2 clears it. None
            (every stage-2 model) lets the router decide.

    Losses (L_SE + polarity_weight * L_Pol; stage 2 adds efficiency_weight * L_Eff + balance_weight * L_Bal
    + share_weight * L_Share):
        target_utilization (`float`, defaults to 0.25): mean utilization the router is trained towards, in
            (0, largest factor]. A target below the smallest factor (the paper's 0.1 with factors from 0.125)
            cannot be met: it asks for "as cheap as possible" and the balance loss keeps the router mixing.
        efficiency_weight / balance_weight (`float`, defaults to 1.0 / 0.1): the paper's beta and gamma.
        min_factor_share (`float`, defaults to 0.0 = off, the paper): the share of frames every factor should keep,
            in [0, 1 / len(utilization_factors)]; L_Share (`losses.share_floor_loss`) penalises each factor
            below it, and the router calibration after stage 2 keeps it. Not in the paper: at a low target the
            balance loss alone lets the widest factor fall to ~0 (its minimiser there gives 1.0 no frames).
        share_weight (`float`, defaults to 1.0): weight of L_Share when `min_factor_share` > 0.
        stft_sc_factor / stft_mag_factor (`float`, defaults to 0.1): weights of the multi-resolution STFT
            loss terms (denoiser's causal VoiceBank recipe); 0 for both disables the STFT loss.
        polarity_weight (`float`, defaults to 1.0): weight of L_Pol (`losses.polarity_loss`), which is 0 while the
            estimate correlates non-negatively with the target and up to 1 when it is inverted. The STFT loss
            cannot tell an inverted estimate from the right one and the L1 term barely outweighs it: trained
            without L_Pol (0), the narrow widths of a slimmable backbone can settle on an inverted output,
            which nothing but mixing widths per frame (or with the input) reveals.
        si_sdr_weight (`float`, defaults to 0.0): adds si_sdr_weight * (-SI-SDR in dB) (`losses.si_sdr_loss`,
            over each item's valid samples) to L_SE; 0 keeps DEMUCS' L1 + STFT loss alone. -SI-SDR is about -5 to
            -20 on speech, so a weight near 0.01 makes it commensurate with L_SE (~0.2). SI-SDR is blind to the
            sign: static runs at 0.01 and 0.05 put out inverted speech on 95% of their validation clips despite
            L_Pol at weight 1 (docs/training.md), so raise `polarity_weight` with it.
        pause_weight (`float`, defaults to 0.0): adds pause_weight * L_Pause (`losses.pause_residual_loss`:
            E / (E + N) with E the output's and N the noisy input's energy over the 20 ms frames where the clean
            target lies 40 dB below its loudest frame) to L_SE; 0 keeps DEMUCS' loss alone. L_Pause is 0.5 for
            the identity and 0.091 for 10 dB of suppression in the pauses.
        compressed_weight (`float`, defaults to 0.0): adds compressed_weight * L_Cmp (`losses.compressed_spectral_loss`:
            mean squared error between power-law compressed spectra, 0.3 of it on the complex values and 0.7 on
            the magnitudes, exponent 0.3, as GTCRN and DeepFilterNet train) to L_SE; 0 keeps DEMUCS' loss alone.
            Unlike the log-magnitude term it weighs a bin by its compressed level, and unlike the magnitudes it
            sees the sign of the output.
        suppression_weight (`float`, defaults to 0.0): adds suppression_weight * L_Sup (`losses.suppression_loss`:
            the compressed-magnitude error of the bins where the output holds less than the target, squared and
            averaged; the bins that keep noise cost nothing) to L_SE, so that taking speech away costs more than
            leaving noise in; 0 keeps the loss symmetric.
        voice_weight (`float`, defaults to 0.0): adds voice_weight * L_Voice (`losses.voice_loss`: L_Sup with
            every frequency bin weighed alike, each bin's deficit relative to the target's level there) to L_SE,
            so that taking away the speech's weak upper bands (2-8 kHz) costs as much as its strong low ones;
            0 leaves it out.
        pesq_weight (`float`, defaults to 0.0): adds pesq_weight * L_PESQ (`losses.pesq_loss`: the symmetric and
            asymmetric disturbances of P.862 as a differentiable loss, from the PyPI package `torch-pesq`, which the
            `train` extra installs) to L_SE; 0 leaves it out. It is 0 for the target, about 1.3 at PESQ-WB 3.5 and 5
            at PESQ-WB 1.05 (git-corpus test mixtures).
        routed_loss (`str`, defaults to "mean"): how the routed call with a clean target (stage 2's router term)
            averages L_SE over its batch: "mean", the paper's batch L_SE, or "log", the mean over items of the
            log of each item's own L_SE (`losses.model_losses`). With "log" an output made 10% better counts the
            same on a nearly clean item as on a very noisy one, where the batch mean lets the noisy items'
            larger losses decide where the router spends its width (PESQ-WB, nearer a log scale, gains most
            from width on the cleaner items: docs/results/2026-12-07-stage2-longer-and-lsup-off.md). Needs
            `si_sdr_weight` 0 (the log of a negative L_SE is undefined). Static calls are unchanged.
    """

    model_type = "adaslim"

    # DEMUCS backbone
    chin: int = 1
    chout: int = 1
    hidden: int = 32
    depth: int = 5
    kernel_size: int = 8
    stride: int = 4
    causal: bool = True
    resample: int = 4
    growth: int | float = 2
    max_hidden: int = 10_000
    normalize: bool = True
    glu: bool = True
    rescale: float | int = 0.1
    floor: float | int = 1e-3
    sample_rate: int = 16_000
    # slimming
    utilization_factors: list[float] | tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    width_gains: bool = False
    # bottleneck
    bottleneck: str = "gru"
    bottleneck_groups: int = 4
    bottleneck_layers: int | None = None
    slim_bottleneck: bool = False
    # router
    router_channels: int = 8
    router_hidden: int = 8
    router_stride: int = 1
    router_delay: int = 1
    gumbel_temperature: float | int = 1.0
    default_utilization: float | int | None = None
    # losses
    target_utilization: float | int = 0.25
    efficiency_weight: float | int = 1.0
    balance_weight: float | int = 0.1
    min_factor_share: float | int = 0.0
    share_weight: float | int = 1.0
    stft_sc_factor: float | int = 0.1
    stft_mag_factor: float | int = 0.1
    polarity_weight: float | int = 1.0
    si_sdr_weight: float | int = 0.0
    pause_weight: float | int = 0.0
    compressed_weight: float | int = 0.0
    suppression_weight: float | int = 0.0
    voice_weight: float | int = 0.0
    pesq_weight: float | int = 0.0
    routed_loss: str = "mean"

    def __post_init__(self, **kwargs):
        self.utilization_factors = [float(u) for u in self.utilization_factors]
        for name in FLOAT_FIELDS:
            setattr(self, name, float(getattr(self, name)))
        if self.default_utilization is not None:
            self.default_utilization = float(self.default_utilization)
        if self.bottleneck_layers is None:
            self.bottleneck_layers = 2 if self.bottleneck == "lstm" else 1
        self._check_values()
        super().__post_init__(**kwargs)

    def _check_values(self):
        """Reject values the model cannot be built with: a ValueError saying what is allowed."""

        def require(condition: bool, message: str):
            if not condition:
                raise ValueError(f"AdaSlimConfig: {message}")

        for name in ("chin", "chout", "hidden", "depth", "kernel_size", "stride", "sample_rate",
                     "bottleneck_groups", "router_channels", "router_hidden", "router_stride", "max_hidden"):
            value = getattr(self, name)
            require(value >= 1, f"`{name}` must be a positive integer, got {value}.")
        require(self.router_delay >= 0, f"`router_delay` must be >= 0 router frames, got {self.router_delay}.")
        require(self.resample in (1, 2, 4), f"`resample` must be 1, 2 or 4, got {self.resample}.")
        require(
            self.kernel_size % self.stride == 0,
            f"`kernel_size` must be a multiple of `stride`, got kernel_size={self.kernel_size}, stride={self.stride}.",
        )
        require(self.growth >= 1, f"`growth` must be >= 1, got {self.growth}.")
        require(self.floor > 0, f"`floor` must be > 0, got {self.floor}.")
        require(self.rescale >= 0, f"`rescale` must be >= 0 (0 disables it), got {self.rescale}.")
        require(
            self.bottleneck in ("gru", "lstm"), f"`bottleneck` must be 'gru' or 'lstm', got {self.bottleneck!r}."
        )
        require(self.routed_loss in ROUTED_LOSSES,
                f"`routed_loss` must be one of {ROUTED_LOSSES}, got {self.routed_loss!r}.")
        require(self.routed_loss != "log" or self.si_sdr_weight == 0,
                "`routed_loss='log'` takes the log of each item's L_SE, which -SI-SDR (`si_sdr_weight` > 0) can make "
                f"negative: set si_sdr_weight=0 or routed_loss='mean', got si_sdr_weight={self.si_sdr_weight}.")
        require(self.bottleneck_layers >= 1, f"`bottleneck_layers` must be >= 1, got {self.bottleneck_layers}.")
        if self.bottleneck == "gru":
            require(
                self.channels[-1] % self.bottleneck_groups == 0,
                f"`bottleneck_groups`={self.bottleneck_groups} must divide the bottleneck width {self.channels[-1]}.",
            )
        if self.slim_bottleneck:
            require(self.bottleneck == "gru" and self.bottleneck_layers == 1 and self.causal,
                    "`slim_bottleneck` needs the one-layer causal grouped GRU (bottleneck='gru', bottleneck_layers=1, "
                    f"causal=True), got bottleneck={self.bottleneck!r}, bottleneck_layers={self.bottleneck_layers}, "
                    f"causal={self.causal}.")
        factors = self.utilization_factors
        require(len(factors) >= 1, "`utilization_factors` must hold at least one factor.")
        require(
            all(0 < u <= 1 for u in factors) and all(a < b for a, b in zip(factors, factors[1:])),
            f"`utilization_factors` must be strictly increasing values in (0, 1], got {factors}.",
        )
        require(
            math.floor(self.channels[0] * factors[0]) >= 1,
            f"the smallest factor {factors[0]} leaves no channel of the first block (hidden={self.hidden}); "
            f"use a factor >= {1 / self.channels[0]:.4g}.",
        )
        require(
            0 < self.target_utilization <= factors[-1],
            f"`target_utilization` must lie in (0, {factors[-1]}] (at most the largest configured factor), "
            f"got {self.target_utilization}.",
        )
        if self.default_utilization is not None:
            try:
                self.factor_index(self.default_utilization)
            except ValueError:
                raise ValueError(f"AdaSlimConfig: `default_utilization` must be None (route) or one of the factors "
                                 f"{factors}, got {self.default_utilization}.") from None
        share, count = self.min_factor_share, len(factors)
        require(0 <= share <= 1 / count,
                f"`min_factor_share` must lie in [0, 1/{count}] for {count} factors, got {share}.")
        if share and self.target_utilization >= factors[0]:  # below the smallest factor: "as cheap as possible"
            lowest = factors[0] + share * sum(u - factors[0] for u in factors)
            highest = factors[-1] - share * sum(factors[-1] - u for u in factors)
            require(lowest <= self.target_utilization <= highest,
                    f"`min_factor_share`={share} allows mean utilizations in [{lowest:.4g}, {highest:.4g}] only, "
                    f"but `target_utilization` is {self.target_utilization}; lower the share or move the target.")
        require(self.gumbel_temperature > 0, f"`gumbel_temperature` must be > 0, got {self.gumbel_temperature}.")
        for name in LOSS_WEIGHTS:
            require(getattr(self, name) >= 0, f"`{name}` must be >= 0, got {getattr(self, name)}.")

    # ---- derived geometry (computed from the fields above, never stored) ----

    @property
    def sampling_rate(self) -> int:
        """Alias of ``sample_rate`` under the name transformers' audio classes use."""
        return self.sample_rate

    @property
    def channels(self) -> list[int]:
        """Output channels C_1..C_depth of the encoder blocks (denoiser's growth rule)."""
        channels, width = [], self.hidden
        for _ in range(self.depth):
            channels.append(width)
            width = min(int(self.growth * width), self.max_hidden)
        return channels

    @property
    def in_channels(self) -> list[int]:
        """Input channels C_0..C_{depth-1} of the encoder blocks."""
        return [self.chin] + self.channels[:-1]

    @property
    def total_stride(self) -> int:
        """Input samples per bottleneck frame: stride**depth / resample (256 for the defaults)."""
        return self.stride**self.depth // self.resample

    @property
    def router_hop(self) -> int:
        """Input samples per router frame (one decision): ``router_stride * total_stride``."""
        return self.router_stride * self.total_stride

    @property
    def num_factors(self) -> int:
        return len(self.utilization_factors)

    def slim_width(self, layer: int, factor_index: int) -> int:
        """Internal channels of encoder/decoder block ``layer`` (0-based) at factor ``factor_index``."""
        return math.floor(self.channels[layer] * self.utilization_factors[factor_index])

    def bottleneck_active_groups(self, factor_index: int) -> int:
        """Groups of the grouped GRU a frame at factor ``factor_index`` runs: all of them unless
        ``slim_bottleneck``, then ``ceil(u * bottleneck_groups)`` (at least 1)."""
        groups = self.bottleneck_groups if self.bottleneck == "gru" else 1
        if not self.slim_bottleneck:
            return groups
        return max(1, math.ceil(self.utilization_factors[factor_index] * groups - 1e-9))

    def factor_index(self, utilization: float) -> int:
        """Index of ``utilization`` in ``utilization_factors``; ValueError listing the allowed ones."""
        for index, factor in enumerate(self.utilization_factors):
            if abs(factor - float(utilization)) < 1e-9:
                return index
        raise ValueError(
            f"utilization {utilization!r} is not one of the configured factors {self.utilization_factors}."
        )

    def valid_length(self, length: int) -> int:
        """Smallest input length >= ``length`` for which every conv and transposed conv fits exactly.

        DEMUCS pads the input on the right to this length so the decoder output aligns with the input
        (denoiser's ``Demucs.valid_length``): up-sample, apply the strided convs, then the transposed convs.
        """
        length = math.ceil(length * self.resample)
        for _ in range(self.depth):
            length = max(math.ceil((length - self.kernel_size) / self.stride) + 1, 1)
        for _ in range(self.depth):
            length = (length - 1) * self.stride + self.kernel_size
        return int(math.ceil(length / self.resample))

    def frames_per_layer(self, length: int) -> list[int]:
        """Frames N_1..N_depth of each encoder block's output for an input of ``length`` samples
        (after right-padding to ``valid_length``). Decoder block mirroring encoder block l runs on N_l frames."""
        frames = self.valid_length(length) * self.resample
        result = []
        for _ in range(self.depth):
            frames = (frames - self.kernel_size) // self.stride + 1
            result.append(frames)
        return result

    def frames_per_router_frame(self, layer: int) -> int:
        """Frames of block ``layer`` (0-based) under one router decision: router_stride * stride**(depth-1-layer)
        (a bottleneck frame is ``router_stride``-th of a decision; every block above it has ``stride`` times the
        frames of the one below)."""
        return self.router_stride * self.stride ** (self.depth - 1 - layer)

    def num_router_frames(self, length: int) -> int:
        """Router decisions for an input of ``length`` samples: one per ``router_hop`` samples begun. Frames of a
        block past the last router frame's (the padding's receptive field) take the last decision."""
        return math.ceil(length / self.router_hop)


__all__ = ["AdaSlimConfig", "parse_utilization"]
