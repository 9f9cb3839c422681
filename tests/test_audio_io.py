"""audio_io: decoding through soundfile (no FFmpeg), the errors a user can cause, block-exact resampling and
atomic writes that never replace an input or an existing file."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from adaslim_hf.audio_io import (
    AudioError,
    AudioWriter,
    load_audio,
    open_audio,
    rate_ratio,
    resample,
    resampled_length,
    resampler_margin,
    write_audio,
)
from adaslim_hf.feature_extraction_adaslim import pcm_to_float32

FIXTURES = Path(__file__).parent / "fixtures"


def stereo(seconds=0.5, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, int(seconds * rate))) * 0.1).astype(np.float32)


@pytest.mark.parametrize(
    ("extension", "subtype", "tolerance"),
    [("wav", "PCM_16", 1e-4), ("wav", "FLOAT", 0.0), ("flac", "PCM_24", 1e-6), ("ogg", "VORBIS", None),
     ("mp3", "MPEG_LAYER_III", None)],
)
def test_formats_round_trip_as_channels_first_float32(tmp_path, extension, subtype, tolerance):
    audio = stereo(rate=22050)
    path = tmp_path / f"x.{extension}"
    write_audio(path, audio, 22050, subtype=subtype)
    decoded, rate = load_audio(path)
    assert rate == 22050 and decoded.dtype == np.float32 and decoded.shape[0] == 2
    if tolerance is not None:  # lossless
        assert decoded.shape == audio.shape
        assert np.abs(decoded - audio).max() <= tolerance
    else:  # lossy codecs: the length may carry codec padding, the level must survive
        assert abs(decoded.shape[1] - audio.shape[1]) < 0.1 * audio.shape[1]
    from_bytes, _ = load_audio(path.read_bytes())
    np.testing.assert_array_equal(from_bytes, decoded)
    with open(path, "rb") as handle:
        from_file_object, _ = load_audio(handle)
    np.testing.assert_array_equal(from_file_object, decoded)


def test_lossless_files_are_read_lazily_in_blocks():
    source = open_audio(FIXTURES / "speech.wav")
    assert source._array is None  # nothing decoded yet
    whole, rate = sf.read(FIXTURES / "speech.wav", dtype="float32", always_2d=True)
    assert (source.sampling_rate, source.channels, source.frames) == (rate, 1, whole.shape[0])
    blocks = [source.read(start, start + 7001) for start in range(0, source.frames, 7001)]
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole.T)
    assert source.read(source.frames - 3, source.frames + 100).shape == (1, 3)


def test_missing_directory_and_non_audio_inputs_are_clear_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        open_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="is a directory"):
        open_audio(tmp_path)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match="not a readable audio file.*Supported: WAV"):
        open_audio(text)
    with pytest.raises(AudioError, match="not decodable audio"):
        open_audio(b"\x00\x01garbage" * 50)
    with pytest.raises(AudioError, match=r"empty \(0 bytes\)"):
        open_audio(b"")
    with pytest.raises(AudioError, match="expected a path, bytes"):
        open_audio(12345)


def test_truncated_and_empty_files_are_refused(tmp_path):
    good = tmp_path / "good.wav"
    write_audio(good, stereo(), 16000, subtype="PCM_16")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated WAV: its header announces 8000 frames but the file holds 39"):
        open_audio(truncated)
    with pytest.raises(AudioError, match="truncated WAV"):
        open_audio(data[: len(data) // 2])
    header_only = tmp_path / "header_only.wav"
    header_only.write_bytes(data[:44])
    with pytest.raises(AudioError, match="no audio samples|truncated"):
        open_audio(header_only)
    empty = tmp_path / "empty.wav"
    with AudioWriter(empty, 16000, 1):  # a header and no samples (write_audio refuses an empty signal)
        pass
    with pytest.raises(AudioError, match="contains no audio samples"):
        open_audio(empty)
    flac = tmp_path / "cut.flac"
    write_audio(flac, stereo(seconds=2.0), 16000, subtype="PCM_16")
    cut = tmp_path / "cut_half.flac"
    cut.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    with pytest.raises(AudioError, match="truncated or corrupt"):
        load_audio(cut)
    mp3 = tmp_path / "cut.mp3"
    write_audio(mp3, stereo(seconds=2.0), 16000)
    with pytest.raises(AudioError, match="truncated"):
        open_audio(mp3.read_bytes()[: mp3.stat().st_size // 2])


def test_streaming_wav_placeholder_sizes_are_not_called_truncated(tmp_path):
    buffer = io.BytesIO()
    sf.write(buffer, stereo().T, 16000, format="WAV", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # 'data' size left open by a streaming recorder
    audio, rate = load_audio(bytes(data))
    assert rate == 16000 and audio.shape == (2, 8000)


@pytest.mark.parametrize(("orig", "new"), [(44100, 16000), (22050, 16000), (8000, 16000), (48000, 16000),
                                           (16000, 44100), (16000, 22050)])
def test_resampling_block_by_block_with_the_margin_equals_resampling_everything(orig, new):
    signal = np.random.default_rng(1).standard_normal(orig // 2).astype(np.float32)
    whole = resample(signal, orig, new)
    assert whole.shape[-1] == resampled_length(signal.shape[-1], orig, new)
    p, q = rate_ratio(orig, new)
    margin = resampler_margin(orig, new)
    assert margin % p == 0
    pieces = []
    step = q * max(1, 1999 // q)  # blocks of ~2000 output samples
    for start in range(0, whole.shape[-1], step):
        stop = min(start + step, whole.shape[-1])
        first = max(start // q * p - margin, 0)
        block = resample(signal[first : -(-stop * p // q) + margin], orig, new)
        offset = start - first * q // p
        pieces.append(block[offset : offset + stop - start])
    assert np.abs(np.concatenate(pieces) - whole).max() < 2e-6
    tensor = resample(torch.from_numpy(signal), orig, new)
    assert isinstance(tensor, torch.Tensor) and torch.allclose(tensor, torch.from_numpy(whole))


def test_writer_is_atomic_and_never_replaces_inputs_or_existing_files(tmp_path):
    target = tmp_path / "out.wav"
    with pytest.raises(RuntimeError, match="boom"), AudioWriter(target, 16000, 1) as writer:
        writer.write(np.zeros(100, np.float32))
        assert not target.exists()  # only the hidden temporary exists while writing
        raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []  # temporary removed too
    write_audio(target, np.ones(10, np.float32) * 0.5, 16000)
    with pytest.raises(AudioError, match="already exists") as refused:
        write_audio(target, np.zeros(10, np.float32), 16000)
    assert isinstance(refused.value, FileExistsError)  # what the data layer's callers catch
    assert load_audio(target)[0].max() == 0.5
    write_audio(target, np.zeros(10, np.float32), 16000, overwrite=True)
    assert load_audio(target)[0].max() == 0.0
    with pytest.raises(AudioError, match="over an input"):
        write_audio(target, np.zeros(10, np.float32), 16000, protect=[target], overwrite=True)
    link = tmp_path / "link.wav"
    os.symlink(target, link)
    with pytest.raises(AudioError, match="over an input"):
        write_audio(link, np.zeros(10, np.float32), 16000, protect=[target], overwrite=True)
    with pytest.raises(ValueError, match="expected 1 channel"), AudioWriter(tmp_path / "b.wav", 16000, 1) as writer:
        writer.write(np.zeros((2, 10), np.float32))
    assert not (tmp_path / "b.wav").exists()


def test_writer_errors_name_the_problem(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        AudioWriter(tmp_path / "missing" / "x.wav", 16000, 1)
    with pytest.raises(AudioError, match="unknown audio format"):
        write_audio(tmp_path / "x.xyz", np.zeros(10, np.float32), 16000)
    with pytest.raises(AudioError, match="is a directory"):
        write_audio(tmp_path, np.zeros(10, np.float32), 16000)
    if os.path.isdir("/sys") and not os.access("/sys/x", os.F_OK):  # a folder nobody may write, root included
        with pytest.raises(AudioError, match="cannot write into /sys"):
            write_audio("/sys/adaslim-test.wav", np.zeros(10, np.float32), 16000)


def test_write_audio_is_the_one_whole_signal_writer(tmp_path):
    """audio_io.write_audio serves the data layer too (data.audio re-exports it): 16-bit PCM by default, the
    folder created, and empty, non-finite or clipping signals refused."""
    from adaslim_hf.data import audio as data_audio

    assert data_audio.write_audio is write_audio
    path = write_audio(tmp_path / "new" / "folder" / "x.wav", np.full(10, 0.5, np.float32), 16000)
    assert path == tmp_path / "new" / "folder" / "x.wav" and sf.info(path).subtype == "PCM_16"
    assert sf.info(write_audio(tmp_path / "f.wav", np.zeros((2, 10)), 16000, subtype="FLOAT")).subtype == "FLOAT"
    with pytest.raises(AudioError, match="empty signal"):
        write_audio(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="non-finite"):
        write_audio(tmp_path / "nan.wav", np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(AudioError, match=r"peak at 2\.000; expected \|x\| <= 1 for PCM_16 \(it would clip\)"):
        write_audio(tmp_path / "loud.wav", np.full(10, 2.0, np.float32), 16000)
    write_audio(tmp_path / "loud.wav", np.full(10, 2.0, np.float32), 16000, subtype="FLOAT")  # floats keep it
    assert load_audio(tmp_path / "loud.wav")[0].max() == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.wav", "loud.wav", "new"]  # nothing half-written


def test_pcm_integers_are_scaled_to_full_scale_and_odd_dtypes_refused():
    assert pcm_to_float32(np.array([-32768, 16384], np.int16)).tolist() == [-1.0, 0.5]
    assert pcm_to_float32(np.array([-(2**31), 2**30], np.int32)).tolist() == [-1.0, 0.5]
    assert pcm_to_float32(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    assert pcm_to_float32(torch.tensor([0.25], dtype=torch.float64)).dtype == np.float32
    assert pcm_to_float32(torch.tensor([0.25], dtype=torch.bfloat16)).tolist() == [0.25]
    for bad in (np.array([1, 2], np.int64), np.array([True]), np.array([1j])):
        with pytest.raises(ValueError, match="real-valued waveform"):
            pcm_to_float32(bad)
