"""Adaptive-slimming DEMUCS (Miccini et al., WASPAA 2025, arXiv 2507.04879) as a transformers model.

The backbone is facebookresearch/denoiser's causal DEMUCS (Defossez et al. 2020). Each encoder and decoder
block can run its INTERNAL feature space at a utilization factor u (the first floor(C * u) channels);
block inputs, outputs, skips and the bottleneck stay full width (the bottleneck's groups slim too with
``config.slim_bottleneck``, off by default). A tiny router picks u per frame.

This file holds the model and its outputs; the parts live in their own rooms, read in this order:
  resample.py    windowed-sinc x2 resampling around the network
  products.py    the matrix products of slimmed shapes (tiled, fused GLU, their autograd functions)
  blocks.py      SlimEncoderBlock / SlimDecoderBlock: a block's weights, hidden activation and overlap-add
  execution.py   the masked / sliced / grouped execution paths and tiling, on the blocks' primitives
  bottleneck.py  the grouped GRU (or DEMUCS' LSTM), whole sequences and stream steps
  router.py      the per-frame router and its straight-through Gumbel choice
  losses.py      the loss terms and their weighted sum (``model_losses``)
  macs.py        the analytic MAC count of a call

``AdaSlimModel.forward``: check and normalise the input (``share_inputs``), decide a factor per router frame
(router, static factor or given choices), plan each layer's execution, run encoder -> bottleneck ->
decoder, down-sample and rescale, then count MACs and assemble the losses.

Symbols: B batch, T input samples, L padded length (``valid_length``), U resample factor, N_l frames of
layer l, N router frames, J utilization factors, C_l channels of layer l, w internal (slimmed) width.

Imports only torch, transformers and siblings: the file travels to the Hub as remote code (with the
siblings it imports).
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .blocks import SlimDecoderBlock, SlimEncoderBlock, WidthGains
from .bottleneck import bottleneck_forward, build_bottleneck
from .configuration_adaslim import AdaSlimConfig
from .execution import Decisions, bottleneck_active, decoder_forward, encoder_forward, layer_plans, router_runs
from .losses import model_losses, stft_magnitudes
from .macs import call_macs
from .products import autocast_dtype
from .resample import SINC_ZEROS, downsample2, resample_stages, upsample2
from .router import AdaSlimRouter, DiagonalGRU, straight_through_gumbel

# Read from here by modules written before these names had rooms of their own (cli_stream.py,
# scripts/benchmark.py); new code imports them from their homes.
FORMER_NAMES = (router_runs, SINC_ZEROS)

# The label of every stage of a forward starts with this (``stage``); scripts/benchmark.py --profile reads them.
STAGE_PREFIX = "adaslim."


def stage(name: str):
    """A stage of the forward, labelled ``STAGE_PREFIX + name`` for torch.profiler: a ``record_function`` range,
    which costs a few microseconds per stage while no profiler runs. The stages do not nest; what lies between
    them (argument handling) is left unlabelled. ``scripts/benchmark.py --profile`` times them."""
    return torch.profiler.record_function(STAGE_PREFIX + name)


# ----------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------


@dataclass
class AdaSlimOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): with `clean_values`: L_SE + polarity_weight *
            L_Pol, plus efficiency_weight * L_Eff + balance_weight * L_Bal (+ share_weight * L_Share when
            min_factor_share > 0) when the router decided.
        enhanced_values (`torch.FloatTensor`, same shape as `input_values`): the enhanced waveform.
        choice (`torch.LongTensor` of shape `(batch, router_frames)`): factor index per router frame,
            -1 for frames entirely past an item's end.
        utilization_per_frame (`torch.FloatTensor` of shape `(batch, router_frames)`): the factor per frame
            (0 past an item's end).
        mean_utilization (`torch.FloatTensor` of shape `(batch,)`): mean factor over each item's frames.
        router_logits (`torch.FloatTensor` of shape `(batch, router_frames, factors)`, *optional*): scores of
            the router; None for a static factor or a given choice.
        macs (`torch.DoubleTensor` of shape `(batch,)`): multiply-accumulates this call spent per item
            (adaslim_hf.macs.call_macs).
        se_loss, efficiency_loss, balance_loss, polarity_loss, share_loss (`torch.FloatTensor` of shape `()`,
            *optional*): loss terms (share_loss only when min_factor_share > 0).
    """

    loss: torch.FloatTensor | None = None
    enhanced_values: torch.FloatTensor | None = None
    choice: torch.LongTensor | None = None
    utilization_per_frame: torch.FloatTensor | None = None
    mean_utilization: torch.FloatTensor | None = None
    router_logits: torch.FloatTensor | None = None
    macs: torch.DoubleTensor | None = None
    se_loss: torch.FloatTensor | None = None
    efficiency_loss: torch.FloatTensor | None = None
    balance_loss: torch.FloatTensor | None = None
    polarity_loss: torch.FloatTensor | None = None
    share_loss: torch.FloatTensor | None = None


def _versions(*tensors) -> tuple:
    """In-place version counters (None for None): a changed one means the tensor was modified since.
    Tensors made under ``torch.inference_mode()`` keep no counter; they read as "inference" (identity is
    then the only check ``SharedInputs.matches`` can make)."""
    return tuple(None if tensor is None else "inference" if tensor.is_inference() else tensor._version
                 for tensor in tensors)


@dataclass
class SharedInputs:
    """What a forward computes for one batch before any width matters (``AdaSlimModel.share_inputs``).

    A stage-1 step runs one batch at every utilization factor; ``forward(..., shared_inputs=...)`` then skips
    the normalisation, the up-sampling and the target's STFTs at every factor but the first. The forward
    only accepts it with the very tensors it was computed from, unmodified (identity and version counters).
    """

    input_values: torch.Tensor
    padding_mask: torch.Tensor | None
    clean_values: torch.Tensor | None
    versions: tuple  # _versions(input_values, padding_mask, clean_values) when computed
    flat: bool  # input_values was [B, T]
    lengths: torch.Tensor  # [B] valid samples per item (CPU)
    std: torch.Tensor  # [B, 1, 1] the normalisation scale
    sample_mask: torch.Tensor | None  # [B, 1, T] 1 = real sample; None without a padding mask
    normalized: torch.Tensor  # [B, chin, L] normalised and zero-padded (the router's input)
    upsampled: torch.Tensor  # [B, chin, L * U] the network's input
    target_magnitudes: list[torch.Tensor] | None  # per STFT resolution [B, frames, bins]; None without a target

    def matches(self, input_values, padding_mask, clean_values) -> bool:
        return (self.input_values is input_values and self.padding_mask is padding_mask
                and self.clean_values is clean_values
                and self.versions == _versions(input_values, padding_mask, clean_values))


# ----------------------------------------------------------------------------------------------------
# The models
# ----------------------------------------------------------------------------------------------------


class AdaSlimPreTrainedModel(PreTrainedModel):
    config_class = AdaSlimConfig
    config: AdaSlimConfig
    base_model_prefix = "adaslim"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' ``from_pretrained`` restricted to safetensors weights: a folder or Hub repo that only
        has pickled weights (``pytorch_model.bin``) is refused instead of unpickled."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("adaslim_hf loads safetensors weights only; use_safetensors=False is not supported.")
        kwargs["use_safetensors"] = True
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        """torch's default initialisation, then DEMUCS' rescaling of backbone convs (Defossez et al. 2019):
        weight and bias divided by sqrt(std(weight) / rescale); a block's per-width output gains start at 1.
        Tensors loaded from a checkpoint are kept."""
        if isinstance(module, WidthGains):
            gain = getattr(module, "width_gain", None)
            if gain is not None and not getattr(gain, "_is_hf_initialized", False):
                gain.fill_(1.0)
            return
        if not isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear, nn.GRU, nn.LSTM, DiagonalGRU)):
            return
        if any(getattr(p, "_is_hf_initialized", False) for p in module.parameters(recurse=False)):
            return
        module.reset_parameters()
        if getattr(module, "demucs_rescale", False) and self.config.rescale:
            scale = (module.weight.std() / self.config.rescale) ** 0.5
            module.weight.div_(scale)
            if module.bias is not None:
                module.bias.div_(scale)


class AdaSlimModel(AdaSlimPreTrainedModel):
    """Slimmable causal DEMUCS with a per-frame utilization router.

    Example:
    ```python
    >>> import torch
    >>> from adaslim_hf import AdaSlimConfig, AdaSlimModel
    >>> model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).eval()
    >>> out = model(torch.randn(1, 16000) * 0.1)          # the router decides per 16 ms frame
    >>> out.enhanced_values.shape, out.choice.shape[0]
    (torch.Size([1, 16000]), 1)
    >>> model(torch.randn(1, 16000) * 0.1, utilization=0.25).macs.shape   # a static factor
    torch.Size([1])
    ```
    """

    def __init__(self, config: AdaSlimConfig):
        super().__init__(config)
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()  # decoder[i] mirrors encoder[depth - 1 - i] (denoiser's order)
        for layer, (c_in, c) in enumerate(zip(config.in_channels, config.channels)):
            narrow = ([config.slim_width(layer, index) for index in range(config.num_factors - 1)]
                      if config.width_gains else [])  # the widths with their own output gains
            self.encoder.append(SlimEncoderBlock(c_in, c, config.kernel_size, config.stride, config.glu, narrow))
            c_out = config.chout if layer == 0 else c_in
            self.decoder.insert(
                0, SlimDecoderBlock(c, c_out, config.kernel_size, config.stride, config.glu, last=layer == 0,
                                    narrow_widths=narrow)
            )
        for block in list(self.encoder) + list(self.decoder):
            for conv in block.children():
                conv.demucs_rescale = True
        self.bottleneck = build_bottleneck(config.channels[-1], config.bottleneck, config.bottleneck_groups,
                                           config.bottleneck_layers, bidirectional=not config.causal)
        self.router = AdaSlimRouter(config)
        self.post_init()

    # ---- input checks ----

    def _check_inputs(self, input_values, padding_mask):
        """-> input [B, chin, T] float, valid lengths [B], whether the caller passed [B, T]."""
        if not isinstance(input_values, torch.Tensor):
            raise ValueError(f"input_values must be a torch.Tensor, got {type(input_values).__name__}.")
        if not input_values.is_floating_point():
            raise ValueError(f"input_values must be a floating-point waveform, got dtype {input_values.dtype}.")
        chin = self.config.chin
        if input_values.dim() == 2 and chin == 1:
            x, flat = input_values.unsqueeze(1), True
        elif input_values.dim() == 3 and input_values.shape[1] == chin:
            x, flat = input_values, False
        else:
            expected = "[batch, samples] or [batch, 1, samples]" if chin == 1 else f"[batch, {chin}, samples]"
            raise ValueError(f"input_values must have shape {expected}, got {list(input_values.shape)}.")
        batch, _, length = x.shape
        if batch == 0 or length == 0:
            raise ValueError(f"input_values is empty: shape {list(input_values.shape)}.")
        if not torch.isfinite(x).all():
            raise ValueError("input_values contains NaN or Inf samples.")
        x = x.to(self.dtype)
        if padding_mask is None:
            return x, torch.full((batch,), length, dtype=torch.long), flat
        if tuple(padding_mask.shape) != (batch, length):
            raise ValueError(
                f"padding_mask must have shape [batch, samples] = {[batch, length]}, got {list(padding_mask.shape)}."
            )
        mask = padding_mask.bool()
        lengths = mask.sum(dim=1)
        prefix = torch.arange(length, device=mask.device) < lengths[:, None]
        if not torch.equal(mask, prefix):
            raise ValueError("padding_mask must mark each item's real samples as one run from the start (1...1 0...0).")
        if (lengths == 0).any():
            raise ValueError(f"padding_mask leaves item(s) {torch.nonzero(lengths == 0).flatten().tolist()} empty.")
        return x, lengths.cpu(), flat

    def _check_choice(self, choice: torch.Tensor, batch: int, num_frames: int) -> torch.Tensor:
        if not isinstance(choice, torch.Tensor) or choice.is_floating_point() or choice.dtype == torch.bool:
            raise ValueError(
                "utilization must be None, one of the configured factors "
                f"{self.config.utilization_factors}, or an integer tensor of factor indices."
            )
        if tuple(choice.shape) != (batch, num_frames):
            raise ValueError(
                f"a per-frame utilization choice must have shape [batch, router_frames] = {[batch, num_frames]}, "
                f"got {list(choice.shape)}."
            )
        if choice.numel() and (choice.min() < 0 or choice.max() >= self.config.num_factors):
            raise ValueError(
                f"per-frame choices must be factor indices in [0, {self.config.num_factors - 1}] "
                f"(factors {self.config.utilization_factors}), got values in [{int(choice.min())}, {int(choice.max())}]."
            )
        return choice.long()

    # ---- the width-independent part of a forward ----

    def share_inputs(self, input_values: torch.Tensor, padding_mask: torch.Tensor | None = None,
                     clean_values: torch.Tensor | None = None) -> "SharedInputs":
        """Checks, normalisation, padding and up-sampling of the input, and the target's spectra: everything a
        forward computes before any width matters. Pass the result as ``forward(..., shared_inputs=...)``
        with the same tensors to run one batch at several widths (stage 1) without repeating it. Computed in
        the parameters' dtype, also inside a ``torch.autocast`` region."""
        device_type = input_values.device.type if isinstance(input_values, torch.Tensor) else "cpu"
        with torch.autocast(device_type, enabled=False):
            return self._share_inputs(input_values, padding_mask, clean_values)

    def _share_inputs(self, input_values, padding_mask, clean_values) -> "SharedInputs":
        config = self.config
        with stage("inputs"):
            x, lengths, flat, std, sample_mask = self._normalized_inputs(input_values, padding_mask, clean_values)
        upsampled = x
        with stage("upsample"):
            for _ in range(resample_stages(config.resample)):
                upsampled = upsample2(upsampled)  # -> [B, chin, L * U]

        target_magnitudes = None
        if clean_values is not None and (config.stft_sc_factor or config.stft_mag_factor):
            with stage("target_spectra"):
                # the loss compares [B, chin * T] signals, masked only for [B, T] inputs (see forward)
                target = clean_values.to(x.dtype)
                target_magnitudes = stft_magnitudes(target if flat else target.reshape(x.shape[0], -1),
                                                    mask=padding_mask if flat else None)
        return SharedInputs(
            input_values=input_values, padding_mask=padding_mask, clean_values=clean_values,
            versions=_versions(input_values, padding_mask, clean_values), flat=flat, lengths=lengths, std=std,
            sample_mask=sample_mask, normalized=x, upsampled=upsampled, target_magnitudes=target_magnitudes,
        )

    def _normalized_inputs(self, input_values, padding_mask, clean_values):
        """Checks, normalisation and padding -> (x [B, chin, L] normalised and zero-padded, lengths [B], whether
        the caller passed [B, T], std [B, 1, 1], sample mask [B, 1, T] or None)."""
        config = self.config
        x, lengths, flat = self._check_inputs(input_values, padding_mask)  # x [B, chin, T]
        if clean_values is not None and tuple(clean_values.shape) != tuple(input_values.shape):
            raise ValueError(
                f"clean_values must have the shape of input_values {list(input_values.shape)}, "
                f"got {list(clean_values.shape)}."
            )
        batch, _, length = x.shape
        padded_length = config.valid_length(length)
        sample_mask = None
        if padding_mask is not None:
            sample_mask = (torch.arange(length)[None, :] < lengths[:, None]).to(x.dtype).to(x.device)[:, None]

        # normalise by each item's standard deviation over its real samples (DEMUCS), zero the padding
        if config.normalize:
            mono = x.mean(dim=1)  # [B, T]
            count = lengths.to(x.device, x.dtype)
            weights = sample_mask[:, 0] if sample_mask is not None else torch.ones_like(mono)
            mean = (mono * weights).sum(dim=1) / count
            variance = (((mono - mean[:, None]) * weights) ** 2).sum(dim=1) / (count - 1).clamp(min=1)
            std = variance.sqrt()[:, None, None]  # [B, 1, 1]
            x = x / (config.floor + std)
        else:
            std = x.new_ones(batch, 1, 1)
        if sample_mask is not None:
            x = x * sample_mask
        x = F.pad(x, (0, padded_length - length))  # [B, chin, L]
        return x, lengths, flat, std, sample_mask

    # ---- forward ----

    def forward(
        self,
        input_values: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        utilization: float | torch.Tensor | None = None,
        clean_values: torch.Tensor | None = None,
        execution: str | None = None,
        return_dict: bool | None = None,
        shared_inputs: "SharedInputs | None" = None,
        gumbel_noise_scale: float = 1.0,
        **kwargs,
    ) -> AdaSlimOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, samples)` or `(batch, chin, samples)`): noisy
                waveform at `config.sample_rate`.
            padding_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 for real samples, 0 for
                padding (one run from the start). Each item of a padded batch gets exactly what it gets alone
                (causal models).
            utilization (`float` or `torch.LongTensor` of shape `(batch, router_frames)`, *optional*): None lets
                the router decide per frame (or runs `config.default_utilization` when that is set: a model
                whose router was never trained); a configured factor runs every frame at that width; a tensor
                gives the factor index of every router frame (`config.num_router_frames(samples)` of them).
            clean_values (`torch.FloatTensor`, same shape as `input_values`, *optional*): target for the loss.
            execution (`str`, *optional*): force an execution path, "masked", "sliced" (static factors only)
                or "grouped"; by default training with gradients uses "masked" and everything else the sliced
                paths, whose cost follows the MACs.
            shared_inputs (`SharedInputs`, *optional*): `self.share_inputs(input_values, padding_mask,
                clean_values)` of these very tensors, computed once for several calls on one batch (stage-1
                training runs it at every factor); the result is the same as without it.
            gumbel_noise_scale (`float`, defaults to 1.0): training with the router only: the Gumbel noise added
                to the router's scores before the hard choice is scaled by this. 1 is the standard
                straight-through Gumbel-softmax; 0 makes the choice the arg max that inference takes (the
                gradient is still the softmax's). Stage-2 training lowers it towards 0 so that the losses act on
                the decisions inference will make (`TrainingSettings.gumbel_noise_decay_steps`).

        Inside a `torch.autocast` region (e.g. accelerate's `mixed_precision="bf16"`, or the pipeline's
        `precision="bf16"`) the encoder and decoder blocks compute in the autocast dtype; normalisation,
        resampling, the router, the recurrent bottleneck, the output and the losses stay in the parameters'
        dtype (float32).
        """
        device_type = input_values.device.type if isinstance(input_values, torch.Tensor) else "cpu"
        compute_dtype = autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return self._forward(input_values, padding_mask, utilization, clean_values, execution, return_dict,
                                 shared_inputs, gumbel_noise_scale, compute_dtype, **kwargs)

    def _forward(self, input_values, padding_mask, utilization, clean_values, execution, return_dict, shared_inputs,
                 gumbel_noise_scale, compute_dtype, **kwargs):
        """``forward`` with autocast off; the encoder and decoder blocks run in ``compute_dtype`` (None: the
        parameters' dtype)."""
        if kwargs:
            raise ValueError(f"AdaSlimModel.forward got unexpected arguments {sorted(kwargs)}.")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        if utilization is None and config.default_utilization is not None:  # the router was never trained
            utilization = config.default_utilization
        if shared_inputs is None:
            shared_inputs = self.share_inputs(input_values, padding_mask, clean_values)
        elif not shared_inputs.matches(input_values, padding_mask, clean_values):
            raise ValueError("shared_inputs were computed from other (or since modified) input_values, "
                             "padding_mask or clean_values: call share_inputs on the tensors passed here.")
        lengths = shared_inputs.lengths
        padded_lengths = lengths if padding_mask is not None else None  # None: no item is padded

        router_logits, one_hot, choice, static_index = self._decide(shared_inputs, utilization, gumbel_noise_scale)
        with stage("plans"):
            decisions = Decisions.resolve(config, choice, lengths)
            execution = self._execution_path(execution, static_index)
            full_dtype = shared_inputs.upsampled.dtype
            compute_dtype = compute_dtype or full_dtype
            exec_one_hot = None
            if execution == "masked":
                hard = one_hot if one_hot is not None else F.one_hot(decisions.executed.clamp(min=0),
                                                                     config.num_factors)
                exec_one_hot = decisions.executed_one_hot(hard.to(full_dtype))
            padded_length = config.valid_length(input_values.shape[-1])
            plans = layer_plans(config, execution, padded_lengths, padded_length,
                                choice=decisions.executed, one_hot=exec_one_hot, static_index=static_index,
                                dtype=compute_dtype, device=self.device)
            active = bottleneck_active(config, padded_length, decisions.executed, exec_one_hot)  # [B, N_L, G] or None
        enhanced = self._enhance(shared_inputs, plans, padded_lengths, compute_dtype, active)  # [B, chout, T]
        enhanced_values = enhanced[:, 0] if shared_inputs.flat else enhanced

        losses = {}
        if clean_values is not None:
            with stage("losses"):
                routed_one_hot = None
                if utilization is None:
                    routed_one_hot = one_hot if one_hot is not None else F.one_hot(decisions.reported.clamp(min=0),
                                                                                   config.num_factors)
                    routed_one_hot = routed_one_hot.to(enhanced)
                losses = self._losses(enhanced_values, shared_inputs, routed_one_hot, decisions.frame_valid)
        with stage("output"):
            reported = decisions.reported
            factors = torch.tensor(config.utilization_factors, dtype=enhanced.dtype, device=enhanced.device)
            utilization_per_frame = torch.where(reported >= 0, factors[reported.clamp(min=0)],
                                                torch.zeros_like(factors[0]))
            output = AdaSlimOutput(
                enhanced_values=enhanced_values,
                choice=reported,
                utilization_per_frame=utilization_per_frame,
                mean_utilization=utilization_per_frame.sum(dim=1) / decisions.frame_valid.sum(dim=1),
                router_logits=router_logits,
                macs=call_macs(config, decisions.executed, lengths, router=utilization is None),
                **losses,
            )
        return output if return_dict else output.to_tuple()

    def _decide(self, shared_inputs: SharedInputs, utilization, gumbel_noise_scale: float):
        """Who decides the width of each router frame -> (router logits [B, N, J] or None, straight-through
        one-hots [B, N, J] (training with the router) or None, choice [B, N] factor indices, the static
        factor's index or None)."""
        config = self.config
        x, lengths = shared_inputs.normalized, shared_inputs.lengths  # x [B, chin, L]
        batch, num_frames = x.shape[0], config.num_router_frames(shared_inputs.input_values.shape[-1])
        if isinstance(utilization, torch.Tensor):
            return None, None, self._check_choice(utilization, batch, num_frames).to(x.device), None
        if utilization is not None:
            static_index = config.factor_index(utilization)
            return None, None, torch.full((batch, num_frames), static_index, dtype=torch.long, device=x.device), static_index
        with stage("router"):
            valid_frames = [config.num_router_frames(int(n)) for n in lengths.tolist()]
            router_logits = self.router(x, num_frames, valid_frames)  # [B, N, J]
            if not self.training:
                return router_logits, None, router_logits.argmax(dim=-1), None
            one_hot = straight_through_gumbel(router_logits, config.gumbel_temperature, gumbel_noise_scale)
            return router_logits, one_hot, one_hot.argmax(dim=-1), None

    def _execution_path(self, execution: str | None, static_index: int | None) -> str:
        """The execution path asked for, or by default: sliced for a static factor, masked for training with
        gradients, grouped otherwise."""
        if execution is None:
            if static_index is not None:
                return "sliced"
            return "masked" if self.training and torch.is_grad_enabled() else "grouped"
        if execution not in ("masked", "sliced", "grouped"):
            raise ValueError(f"execution must be 'masked', 'sliced' or 'grouped', got {execution!r}.")
        if execution == "sliced" and static_index is None:
            raise ValueError("execution='sliced' needs a static utilization factor.")
        return execution

    def _enhance(self, shared_inputs: SharedInputs, plans: list, lengths: torch.Tensor | None,
                 compute_dtype: torch.dtype, active: torch.Tensor | None = None) -> torch.Tensor:
        """The up-sampled input (``share_inputs``) through encoder, bottleneck and decoder under ``plans``,
        down-sampled, cropped and rescaled -> [B, chout, T]. The blocks compute in ``compute_dtype``; the
        bottleneck and the resampling in the parameters' dtype. ``lengths`` [B] of a padded batch (else None);
        ``active`` [B, N_L, G]: the bottleneck groups each frame runs (``execution.bottleneck_active``)."""
        config = self.config
        full_dtype = shared_inputs.upsampled.dtype
        x = shared_inputs.upsampled.transpose(1, 2).to(compute_dtype)  # [B, L*U, chin], time-major from here on
        skips = []
        for layer, (block, plan) in enumerate(zip(self.encoder, plans), start=1):
            with stage(f"encoder.{layer}"):
                x = encoder_forward(block, x, plan)  # [B, N_l, C_l]
            skips.append(x)
        with stage("bottleneck"):
            frames = None if lengths is None else [config.frames_per_layer(int(n))[-1] for n in lengths.tolist()]
            x = bottleneck_forward(self.bottleneck, x.to(full_dtype), frames, active).to(compute_dtype)
        for layer, block, plan in zip(range(config.depth, 0, -1), self.decoder, reversed(plans)):
            with stage(f"decoder.{layer}"):
                x = decoder_forward(block, x, skips.pop(), plan)  # [B, N_{l-1}, C_{l-1}]
        with stage("downsample"):
            if lengths is not None:  # what lies past each item's padded length is not part of its signal
                ends = torch.tensor([config.valid_length(int(n)) * config.resample for n in lengths.tolist()])
                x = x * (torch.arange(x.shape[1])[None, :] < ends[:, None]).to(x)[..., None]
            x = x.transpose(1, 2).to(full_dtype)  # [B, chout, L*U]
            for _ in range(resample_stages(config.resample)):
                x = downsample2(x)
            enhanced = x[..., : shared_inputs.input_values.shape[-1]] * shared_inputs.std
            return enhanced if shared_inputs.sample_mask is None else enhanced * shared_inputs.sample_mask

    def _losses(self, enhanced_values: torch.Tensor, shared_inputs: SharedInputs, one_hot: torch.Tensor | None,
                frame_valid: torch.Tensor) -> dict:
        """``losses.model_losses`` of this call: [B, T] inputs are compared masked by their padding mask,
        [B, chin, T] ones as [B, chin * T] signals."""
        batch, flat = enhanced_values.shape[0], shared_inputs.flat
        estimate = enhanced_values if flat else enhanced_values.reshape(batch, -1)
        target = shared_inputs.clean_values.to(enhanced_values.dtype)
        target = target if flat else target.reshape(batch, -1)
        noisy = shared_inputs.input_values.to(estimate.dtype).reshape(estimate.shape)
        return model_losses(self.config, estimate, target, noisy, shared_inputs.padding_mask if flat else None,
                            shared_inputs.target_magnitudes, one_hot, frame_valid)


__all__ = ["AdaSlimConfig", "AdaSlimModel", "AdaSlimOutput", "AdaSlimPreTrainedModel", "AdaSlimRouter",
           "SharedInputs"]
