"""The git-sources corpus (tools/git_corpus.py) on tiny synthetic repositories made with git init."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tools import git_corpus
from tools.git_corpus import (
    build_git_corpus,
    list_files,
    parse_source_paths,
    resolve_git_dir,
    round_robin,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(cwd), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _voice(seconds: float, f0: float, seed: int, rate: int = 16000) -> np.ndarray:
    """A wideband, syllable-modulated harmonic signal (bandwidth well above 5 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, int(7000 / f0)))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t)
    return (0.1 * tone * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def _noise(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    return (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def _repo(root: Path, files: dict[str, tuple[np.ndarray, int, str] | str]) -> Path:
    root.mkdir(parents=True)
    _git(root, "init", "-q")
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content)
        else:
            audio, rate, fmt = content
            sf.write(target, audio, rate, format=fmt, subtype="PCM_16")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "data")
    return root


def _bare_copy(clone: Path, destination: Path) -> Path:
    """A bare directory holding the clone's loose objects (so one can be deleted to mimic a snapshot)."""
    shutil.copytree(clone / ".git", destination)
    _git(destination, "--git-dir=.", "config", "core.bare", "true")
    return destination


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("git-sources")
    speech = {"train/spk2utt": "0001 u1 u2\n0002 u3\n0003 u4\n", "test/spk2utt": "0004 u5\n0005 u6\n"}
    for number in range(1, 6):
        for clip in range(3):
            speech[f"WAVE/SPEAKER{number:04d}/{number:04d}{clip}.WAV"] = (
                _voice(4.5, 110 + 20 * number, number * 10 + clip), 16000, "WAV")
    speech["README.md"] = "tiny"
    libri = {
        "audio_data/librispeech_train-clean-100/103-1240-0000.flac": (_voice(5.0, 120, 1), 16000, "FLAC"),
        "audio_data/librispeech_train-clean-100/104-1241-0000.flac": (_voice(5.0, 160, 2), 16000, "FLAC"),
        "audio_data/librispeech_train-clean-100/105-1242-0000.flac": (_voice(5.0, 200, 3), 16000, "FLAC"),
        "audio_data/librispeech_test-other/1688/1688-142285-0000.flac": (_voice(4.5, 140, 4), 16000, "FLAC"),
        "audio_data/librispeech_test-other/1688/1688-142285-0001.flac": (_voice(4.5, 140, 5), 16000, "FLAC"),
        "audio_data/other/interview.wav": (_voice(2.0, 100, 6), 16000, "WAV"),
    }
    ambient = {f"{category}/{name}.wav": (_noise(3.0, i), 16000, "WAV")
               for i, (category, name) in enumerate([("wind", "Gust"), ("wind", "Breeze 2"), ("rain", "Rain"),
                                                     ("bathroom", "Fan"), ("market", "Stalls"), ("beach", "Waves"),
                                                     ("voice", "Announcement")])}
    hu = {f"Nonspeech/n{n}.wav": (_noise(2.0, 100 + n, 20000), 20000, "WAV") for n in (1, 2, 3, 5, 10)}
    paths = {
        "speechocean762": _repo(root / "speechocean762", speech),
        "resemblyzer": _bare_copy(_repo(root / "resemblyzer", libri), root / "resemblyzer.git"),
        "noise_dataset": _bare_copy(_repo(root / "noise_dataset", ambient), root / "noise_dataset.git"),
        "noises": _repo(root / "noises", hu),
    }
    # mimic a snapshot without one large file: delete the loose object of beach/Waves.wav
    blob = _git(paths["noise_dataset"], "--git-dir=.", "rev-parse", "HEAD:beach/Waves.wav").strip()
    (paths["noise_dataset"] / "objects" / blob[:2] / blob[2:]).unlink()
    return paths


def _fake_dnsmos(audio: np.ndarray) -> tuple[float, float, float]:
    """BAK falls with the high-frequency noise floor; lets the tests drop utterances without the ONNX model."""
    floor = float(np.mean(np.abs(np.diff(audio))))
    return 3.5, (2.0 if floor > 0.05 else 4.0), 3.0


@pytest.fixture
def fake_dnsmos(monkeypatch):
    calls = []

    def fake(audio):
        calls.append(audio.size)
        return _fake_dnsmos(audio)

    monkeypatch.setattr(git_corpus, "dnsmos_sig_bak_ovrl", fake)
    return calls


def _build(output: Path, sources: dict[str, Path], **kwargs) -> dict:
    settings = {"seed": 0, "valid_mixtures": 5, "test_mixtures": 7, "valid_speakers_per_source": 1, "workers": 1,
                    "log": lambda _: None}
    settings.update(kwargs)
    return build_git_corpus(output, sources, **settings)


def test_resolve_git_dir_reads_clones_and_bare_directories(sources, tmp_path):
    clone = resolve_git_dir(sources["speechocean762"])
    bare = resolve_git_dir(sources["resemblyzer"])
    assert clone.name == ".git" and bare == sources["resemblyzer"].resolve()
    files = {f.path: f for f in list_files(sources["noise_dataset"])}
    assert files["wind/Breeze 2.wav"].present and not files["beach/Waves.wav"].present
    with pytest.raises(ValueError, match="Expected a git clone .* or a bare git directory"):
        resolve_git_dir(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        resolve_git_dir(tmp_path / "nothing")


def test_parse_source_paths_names_what_it_expected():
    assert parse_source_paths(["speechocean762=/a", "noises=/b"]) == {"speechocean762": Path("/a"),
                                                                       "noises": Path("/b")}
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_source_paths(["speechocean762"])
    with pytest.raises(ValueError, match="Unknown git source 'librispeech'"):
        parse_source_paths(["librispeech=/a", "noises=/b"])
    with pytest.raises(ValueError, match="at least one speech source"):
        parse_source_paths(["noises=/b"])


def test_round_robin_spreads_over_speakers_and_repeats_only_when_short():
    rows = [{"speaker": s, "path": f"{s}_{i}"} for s in "abc" for i in range(4)]
    picks = round_robin(rows, 6, np.random.default_rng(0))
    assert sorted(r["speaker"] for r, _ in picks) == ["a", "a", "b", "b", "c", "c"]
    assert all(repeat == 0 for _, repeat in picks)
    picks = round_robin(rows, 14, np.random.default_rng(0))
    assert [repeat for _, repeat in picks].count(1) == 2


def test_build_git_corpus_layout_splits_screening_and_records(sources, tmp_path, fake_dnsmos):
    # speaker 0003 records with a loud hiss: the (fake) DNSMOS BAK drops its utterances
    output = tmp_path / "corpus"
    noisy = dict(sources)
    noisy_repo = tmp_path / "so-noisy"
    shutil.copytree(sources["speechocean762"], noisy_repo)
    for clip in range(3):
        path = noisy_repo / f"WAVE/SPEAKER0003/0003{clip}.WAV"
        audio, rate = sf.read(path, dtype="float32")
        sf.write(path, audio + (0.3 * np.random.default_rng(clip).standard_normal(audio.size)).astype(np.float32), rate)
    _git(noisy_repo, "commit", "-q", "-am", "hiss")
    noisy["speechocean762"] = noisy_repo
    corpus = _build(output, noisy, min_sig=3.0, min_bak=3.0)

    for folder in ("pool/speech/train", "pool/speech/valid", "pool/speech/test", "pool/noise/train",
                   "pool/noise/valid", "pool/noise/test", "mixtures/clean_trainset_corpus_wav",
                   "mixtures/noisy_trainset_corpus_wav", "mixtures/clean_testset_wav", "mixtures/noisy_testset_wav"):
        assert (output / folder).is_dir(), folder
    rows = [json.loads(line) for line in (output / "pool/manifest.jsonl").read_text().splitlines()]
    speech = [r for r in rows if r["kind"] == "speech"]
    assert {r["speaker"] for r in speech if r["split"] == "test"} == {"so762-0004", "so762-0005", "libri-1688"}
    assert "so762-0003" not in {r["speaker"] for r in speech}  # screened out
    # one training speaker per source held out (speechocean's may be 0003, screened out entirely)
    assert 1 <= len(corpus["valid_speakers"]) <= 2
    assert set(corpus["valid_speakers"]) <= {"so762-0001", "so762-0002", "libri-103", "libri-104", "libri-105"}
    splits_of = {}
    for r in rows:
        splits_of.setdefault((r["kind"], r.get("speaker", r["source"])), set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    noise = {r["source"]: r["split"] for r in rows if r["kind"] == "noise"}
    assert noise == {"ambient-wind": "train", "ambient-rain": "train", "ambient-bathroom": "valid",
                     "ambient-market": "test", "hu-n001": "train", "hu-n002": "train", "hu-n003": "valid",
                     "hu-n005": "test", "hu-n010": "test", "synthetic": "train"}
    assert sf.info(output / "pool/noise/train/hu-n001/n1.wav").samplerate == 16000  # 20 kHz resampled
    assert all("dnsmos_bak" in r and r["commit"] and r["blobs"] for r in speech)

    assert corpus["mixtures"] == {"train": len([r for r in speech if r["split"] == "train"]), "valid": 5, "test": 7}
    assert len(list((output / "mixtures/noisy_testset_wav").glob("*.wav"))) == 7
    info = json.loads((output / "corpus.json").read_text())
    assert info["sources"]["noise_dataset"]["audio_files_absent"] == 1
    assert info["sources"]["noise_dataset"]["absent_files"] == ["beach/Waves.wav"]
    assert info["sources"]["noises"]["licence"].startswith("research use only")
    assert all(len(s["commit"]) == 40 for s in info["sources"].values())
    dropped = {(d["source"], d["reason"]): d["count"] for d in info["dropped"]}
    assert dropped[("speechocean762", "utterance DNSMOS BAK < 3.0")] == 3
    assert dropped[("noise_dataset", "absent from the snapshot")] == 1
    assert dropped[("noise_dataset", "speech and announcements (voice/), not a noise")] == 1
    assert dropped[("resemblyzer", "not LibriSpeech (interview and fake-speech demo audio)")] == 1
    assert info["speech_hours"]["train"] > 0 and set(info["speech_hours"]) == {"train", "valid", "test"}

    from adaslim_hf.data.corpus import load_corpus

    for split, count in (("validation", 5), ("test", 7)):
        dataset = load_corpus(output, split)
        assert len(dataset) == count


def test_build_is_deterministic_resumable_and_careful(sources, tmp_path, fake_dnsmos):
    first = _build(tmp_path / "a", sources, min_sig=None, min_bak=None)
    scored = len(fake_dnsmos)
    assert scored > 0
    again = _build(tmp_path / "a", sources, min_sig=None, min_bak=None)  # reused: nothing rescored or rewritten
    assert len(fake_dnsmos) == scored and again["fingerprint"] == first["fingerprint"]
    assert again["dropped"] == first["dropped"] and again["screening"] == first["screening"]
    other = _build(tmp_path / "b", sources, min_sig=None, min_bak=None, cache_dir=tmp_path / "a" / "cache")
    assert len(fake_dnsmos) == scored  # scores come from the cache
    for name in ("mixtures.jsonl",):
        assert (tmp_path / "a/mixtures" / name).read_text() == (tmp_path / "b/mixtures" / name).read_text()
    a = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a/mixtures").rglob("*.wav"))
    assert a == sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b/mixtures").rglob("*.wav"))
    assert other["speech_hours"] == first["speech_hours"]

    with pytest.raises(FileExistsError, match="rebuild"):
        _build(tmp_path / "a", sources, min_sig=None, min_bak=None, seed=1)
    (tmp_path / "c" / "pool").mkdir(parents=True)
    (tmp_path / "c" / "pool" / "mine.txt").write_text("not the builder's")
    with pytest.raises(FileExistsError, match="refusing to touch it"):
        _build(tmp_path / "c", sources, min_sig=None, min_bak=None)
    assert (tmp_path / "c" / "pool" / "mine.txt").read_text() == "not the builder's"
    with pytest.raises(ValueError, match="test_mixtures must be a positive integer, got 0"):
        _build(tmp_path / "d", sources, test_mixtures=0)


def test_dnsmos_scores_short_and_long_signals():
    short = git_corpus.dnsmos_sig_bak_ovrl(_voice(2.0, 150, 0))
    long = git_corpus.dnsmos_sig_bak_ovrl(_voice(12.0, 150, 0))
    assert all(1.0 <= x <= 5.0 for x in (*short, *long))
    with pytest.raises(ValueError, match="non-empty"):
        git_corpus.dnsmos_sig_bak_ovrl(np.zeros(0, dtype=np.float32))


def test_training_noise_babble_and_packages_join_training_only(sources, tmp_path, fake_dnsmos, monkeypatch):
    plain = _build(tmp_path / "plain", sources, min_sig=None, min_bak=None)
    package_clip = {"name": "engine", "pcm": (_noise(2.0, 9) * 32767).astype(np.int16), "source": "pkg-torcs",
                    "category": "pkg-torcs", "repository": "torcs-data", "commit": "1.3.7", "licence": "GPL-2+",
                    "synthetic": False, "members": ["usr/share/games/torcs/data/sound/engine.wav"], "blobs": [],
                    "native_rate": 22050}
    monkeypatch.setattr(git_corpus, "package_noise", lambda cache, workers, log: ([package_clip], Counter()))
    extra = _build(tmp_path / "extra", sources, min_sig=None, min_bak=None, train_noise=["babble", "packages"],
                   cache_dir=tmp_path / "plain" / "cache")
    assert extra["fingerprint"] != plain["fingerprint"] and extra["train_noise"] == ["babble", "packages"]
    rows = [json.loads(line) for line in (tmp_path / "extra/pool/manifest.jsonl").read_text().splitlines()]
    babble = [r for r in rows if r["source"] == "babble"]
    assert len(babble) == git_corpus.BABBLE_FILES and {r["split"] for r in babble} == {"train"}
    train_speakers = {r["speaker"] for r in rows if r["kind"] == "speech" and r["split"] == "train"}
    assert all(set(r["members"]) <= train_speakers for r in babble)  # never a validation or test voice
    audio, rate = sf.read(tmp_path / "extra/pool" / babble[0]["path"], dtype="float32")
    assert rate == 16000 and audio.size == int(git_corpus.BABBLE_SECONDS * rate)
    assert abs(10 * np.log10(np.mean(audio**2)) - (-25.0)) < 0.5
    engine = [r for r in rows if r["source"] == "pkg-torcs"]
    assert [r["path"] for r in engine] == ["noise/train/pkg-torcs/engine.wav"] and engine[0]["licence"] == "GPL-2+"
    # validation and test mixtures are the same files as without the extra noise
    for folder in ("noisy_testset_wav", "clean_testset_wav"):
        for path in sorted((tmp_path / "plain/mixtures" / folder).glob("*.wav")):
            assert path.read_bytes() == (tmp_path / "extra/mixtures" / folder / path.name).read_bytes()
    plain_lines = [json.loads(x) for x in (tmp_path / "plain/mixtures/mixtures.jsonl").read_text().splitlines()]
    extra_lines = [json.loads(x) for x in (tmp_path / "extra/mixtures/mixtures.jsonl").read_text().splitlines()]
    assert [x for x in plain_lines if x["split"] != "train"] == [x for x in extra_lines if x["split"] != "train"]
    with pytest.raises(ValueError, match="Unknown training noise \\['music'\\]"):
        _build(tmp_path / "bad", sources, train_noise=["music"])
