"""Data for training and evaluating speech enhancement: ``datasets`` pipelines for VoiceBank-DEMAND and
DNS-style on-the-fly mixing, DEMUCS' augmentations, batching, and the reader of the real-audio corpora that
``scripts/build_corpus.py`` builds (``corpus``; the builders are tools of the checkout, ``tools/``, which this
package never imports).

Everything decodes through soundfile (no FFmpeg needed). Typical training input::

    from torch.utils.data import DataLoader
    from adaslim_hf.data import load_voicebank, segment_pairs, SpeechEnhancementCollator

    train = segment_pairs(load_voicebank("data/corpus/mixtures", "train"), segment_seconds=4.5,
                          stride_seconds=0.5)
    loader = DataLoader(train, batch_size=16, shuffle=True,
                        collate_fn=SpeechEnhancementCollator(valid_length=model.config.valid_length))
    batch = next(iter(loader))  # input_values, clean_values, padding_mask: [B, T]
"""

from .audio import DecodeAudioColumns, decode_audio_value, list_audio_files, read_audio, resample, write_audio
from .augment import (
    Augmentation,
    BandMask,
    Remix,
    RevEcho,
    Shift,
    augment_pair,
    build_augmentation,
)
from .collate import SpeechEnhancementCollator, largest_valid_length, segment_offsets, segment_pairs, spread_indices
from .dns import (
    EVAL_SNRS,
    LEVEL_RANGE,
    SNR_RANGE,
    NoiseBank,
    apply_rir,
    dns_eval_mixtures,
    dns_training_stream,
    load_dns_test_set,
    mix_at_snr,
    write_mixtures,
)
from .voicebank import (
    VALID_SPEAKERS,
    check_pair,
    load_voicebank,
    load_voicebank_hub,
    load_voicebank_splits,
    pair_files,
)

__all__ = [
    "EVAL_SNRS", "LEVEL_RANGE", "SNR_RANGE", "VALID_SPEAKERS",
    "Augmentation", "BandMask", "DecodeAudioColumns", "NoiseBank", "Remix", "RevEcho", "Shift",
    "SpeechEnhancementCollator",
    "apply_rir", "augment_pair", "build_augmentation", "check_pair", "decode_audio_value", "dns_eval_mixtures",
    "dns_training_stream", "largest_valid_length", "list_audio_files", "load_dns_test_set", "load_voicebank",
    "load_voicebank_hub", "load_voicebank_splits", "mix_at_snr", "pair_files", "read_audio", "resample",
    "segment_offsets", "segment_pairs", "spread_indices", "write_audio", "write_mixtures",
]
