"""The evaluate metric modules: each loads offline from its local folder (a subprocess with HF_HUB_OFFLINE=1,
an empty HF_HOME and sockets refused) and scores real speech sensibly; compute_all and the input checks."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("evaluate")

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
SNR_DB = 5.0

# Runs in a fresh interpreter: the offline variables are read once at import, and no socket may connect.
OFFLINE_SCRIPT = r"""
import json, socket, sys

def refuse(*args, **kwargs):
    raise OSError("this test runs offline: no network connection allowed")

socket.socket.connect = refuse
socket.create_connection = refuse

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from adaslim_hf.metrics import METRIC_NAMES, compute_all, load_metric

clean, rate = sf.read(sys.argv[1])
noise, _ = sf.read(sys.argv[2])
noise = noise[: len(clean)]
noise = noise * np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-float(sys.argv[3]) / 20)
noisy = clean + noise
clean8k, noisy8k = resample_poly(clean, 1, 2), resample_poly(noisy, 1, 2)
pair = dict(predictions=[clean, noisy], references=[clean, clean])
metrics = {name: load_metric(name) for name in METRIC_NAMES}
out = {
    "rate": rate,
    "module_names": {name: module.name for name, module in metrics.items()},
    "pesq_wb": metrics["pesq"].compute(**pair, sample_rate=16000, mode="wb"),
    "pesq_nb_8k": metrics["pesq"].compute(
        predictions=[clean8k, noisy8k], references=[clean8k, clean8k], sample_rate=8000, mode="nb"
    ),
    "stoi": metrics["stoi"].compute(**pair, sample_rate=16000),
    "estoi": metrics["stoi"].compute(**pair, sample_rate=16000, extended=True),
    "si_sdr": metrics["si_sdr"].compute(**pair, sample_rate=16000),
    "dnsmos": metrics["dnsmos"].compute(**pair, sample_rate=16000),
    "compute_all": compute_all([noisy], [clean], sample_rate=16000),
    "dnsmos_one_thread": metrics["dnsmos"].compute(**pair, sample_rate=16000, num_threads=1),
}
from speechmos import dnsmos as speechmos_dnsmos
out["dnsmos_session_threads"] = [session.get_session_options().intra_op_num_threads for session in
                                 (speechmos_dnsmos.dnsmos.onnx_sess, speechmos_dnsmos.dnsmos.p808_onnx_sess)]
try:
    metrics["dnsmos"].compute(**pair, sample_rate=16000, num_threads=0)
except ValueError as error:
    out["dnsmos_bad_threads"] = str(error)
print(json.dumps(out))
"""


def _load_pair(snr_db: float = SNR_DB) -> tuple[np.ndarray, np.ndarray]:
    """Real read speech and real vinyl hiss mixed at ``snr_db`` (float64, 16 kHz)."""
    clean, rate = sf.read(FIXTURES / "speech.wav")
    noise, _ = sf.read(FIXTURES / "noise.wav")
    assert rate == 16000
    noise = noise[: len(clean)]
    noise = noise * np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    return clean, clean + noise


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_EVALUATE_OFFLINE="1",
        HF_HOME=str(tmp_path_factory.mktemp("hf_home")),  # nothing cached beforehand
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
    )
    args = [str(FIXTURES / "speech.wav"), str(FIXTURES / "noise.wav"), str(SNR_DB)]
    run = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, *args], check=False, env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_metric_loads_offline_from_its_folder(offline):
    assert offline["module_names"] == {"pesq": "pesq", "stoi": "stoi", "si_sdr": "si_sdr", "dnsmos": "dnsmos"}


def test_pesq_wide_band_at_16k(offline):
    clean, noisy = offline["pesq_wb"]["pesq_per_item"]
    assert clean == pytest.approx(4.64, abs=0.01)  # the top of the P.862.2 scale
    assert 1.0 <= noisy < 2.0  # hiss at 5 dB SNR
    assert offline["pesq_wb"]["pesq"] == pytest.approx((clean + noisy) / 2)


def test_pesq_narrow_band_at_8k(offline):
    clean, noisy = offline["pesq_nb_8k"]["pesq_per_item"]
    assert clean == pytest.approx(4.55, abs=0.01)  # the top of the P.862.1 scale
    assert 1.0 <= noisy < clean - 1.5


def test_stoi_and_estoi(offline):
    stoi_clean, stoi_noisy = offline["stoi"]["stoi_per_item"]
    estoi_clean, estoi_noisy = offline["estoi"]["estoi_per_item"]
    assert stoi_clean == pytest.approx(1.0, abs=1e-6) and estoi_clean == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < stoi_noisy < 0.95
    assert 0.3 < estoi_noisy < stoi_noisy  # ESTOI is the stricter of the two


def test_si_sdr_metric(offline):
    clean, noisy = offline["si_sdr"]["si_sdr_per_item"]
    assert clean > 80  # bounded only by the 1e-8 constant (and float32 storage)
    assert noisy == pytest.approx(SNR_DB, abs=0.3)  # noise nearly uncorrelated with speech: SI-SDR ~ SNR


def test_dnsmos_returns_p808_and_p835(offline):
    scores = offline["dnsmos"]
    keys = ("p808_mos", "sig_mos", "bak_mos", "ovrl_mos")
    assert set(scores) == {*keys, *(f"{k}_per_item" for k in keys)}
    for key in keys:
        clean, noisy = scores[f"{key}_per_item"]
        assert 1.0 <= noisy < clean <= 5.0, key
    assert scores["ovrl_mos_per_item"][0] > scores["ovrl_mos_per_item"][1] + 1  # hiss costs a lot of OVRL
    assert scores["bak_mos_per_item"][0] > 3


def test_dnsmos_thread_count_is_honoured_and_changes_no_score(offline):
    assert offline["dnsmos_session_threads"] == [1, 1]
    for key in ("p808_mos", "sig_mos", "bak_mos", "ovrl_mos"):
        assert offline["dnsmos_one_thread"][f"{key}_per_item"] == pytest.approx(
            offline["dnsmos"][f"{key}_per_item"], abs=1e-5)
    assert "num_threads must be a positive integer, got 0" in offline["dnsmos_bad_threads"]


def test_compute_all_offline_gives_every_score(offline):
    scores = offline["compute_all"]
    expected = {"pesq", "pesq_nb", "stoi", "estoi", "si_sdr", "dnsmos_p808", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}
    assert set(scores) == expected
    assert scores["pesq"] == pytest.approx(offline["pesq_wb"]["pesq_per_item"][1], abs=1e-4)
    assert scores["stoi"] == pytest.approx(offline["stoi"]["stoi_per_item"][1], abs=1e-4)
    assert scores["dnsmos_ovrl"] == pytest.approx(offline["dnsmos"]["ovrl_mos_per_item"][1], abs=1e-3)


# in-process: compute_all's interface and the loud errors (no DNSMOS model run here)


def test_compute_all_single_arrays_lists_and_selection():
    from adaslim_hf.losses import si_sdr
    from adaslim_hf.metrics import compute_all

    clean, noisy = _load_pair()
    chosen = ("pesq", "stoi", "si_sdr")
    single = compute_all(noisy.astype(np.float32), clean.astype(np.float32), 16000, metrics=chosen)
    assert set(single) == set(chosen) and all(isinstance(v, float) for v in single.values())
    both = compute_all([clean, noisy], [clean, clean], 16000, metrics=chosen, per_item=True)
    assert both["stoi_per_item"][1] == pytest.approx(single["stoi"], abs=1e-6)
    assert both["pesq"] == pytest.approx(np.mean(both["pesq_per_item"]))
    import torch

    expected = float(si_sdr(torch.from_numpy(noisy.astype(np.float32)), torch.from_numpy(clean.astype(np.float32))))
    assert single["si_sdr"] == pytest.approx(expected, abs=1e-3)  # the metric module and the loss agree
    narrow = compute_all(noisy[::2], clean[::2], 8000, metrics=("pesq_nb", "estoi"))
    assert set(narrow) == {"pesq_nb", "estoi"}


def test_pesq_without_speech_is_nan_or_raises():
    from pesq import NoUtterancesError

    from adaslim_hf.metrics import compute_all, load_metric

    silence = np.zeros(16000)
    clean, noisy = _load_pair()
    scores = compute_all([silence, noisy], [silence, clean], 16000, metrics=("pesq",), per_item=True)
    assert math.isnan(scores["pesq_per_item"][0]) and scores["pesq"] == scores["pesq_per_item"][1]
    with pytest.raises(NoUtterancesError):
        load_metric("pesq").compute(predictions=[silence], references=[silence], sample_rate=16000)


def test_bad_inputs_raise_clear_errors():
    from adaslim_hf.metrics import compute_all, load_metric

    clean, noisy = _load_pair()
    with pytest.raises(ValueError, match=r"item 0 .* 47840 samples .* 47839 samples"):
        compute_all(noisy, clean[:-1], 16000, metrics=("stoi",))
    with pytest.raises(ValueError, match=r"\['pesq', 'dnsmos'\] need 16000 Hz"):
        compute_all(noisy, clean, 8000)
    with pytest.raises(ValueError, match="'wb' mode takes sample_rate"):
        load_metric("pesq").compute(predictions=[noisy[::2]], references=[clean[::2]], sample_rate=8000)
    with pytest.raises(ValueError, match="peaks at 2.0000"):
        load_metric("dnsmos").compute(predictions=[np.full(16000, 2.0)], sample_rate=16000)
    with pytest.raises(ValueError, match="take 16000 Hz"):
        load_metric("dnsmos").compute(predictions=[noisy], sample_rate=8000)
    with pytest.raises(ValueError, match="unknown score"):
        compute_all(noisy, clean, 16000, metrics=("mosnet",))
    with pytest.raises(ValueError, match="unknown metric"):
        load_metric("mosnet")
    with pytest.raises(ValueError, match=r"shape \[2, 47840\]"):
        compute_all(np.stack([noisy, noisy]), np.stack([clean, clean]), 16000, metrics=("si_sdr",))
    with pytest.raises(ValueError, match="NaN or infinite"):
        compute_all(np.full(100, np.nan), np.zeros(100), 16000, metrics=("si_sdr",))
    with pytest.raises(ValueError, match="2 items but clean has 1"):
        compute_all([noisy, noisy], [clean], 16000, metrics=("si_sdr",))
