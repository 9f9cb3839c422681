"""Hub-ready: safetensors round trip, auto_map + code files, offline Hub-layout cache, remote code where
adaslim_hf is not importable, safetensors only."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from adaslim_hf import AdaSlimConfig, AdaSlimModel

REPO_ID = "org/adaslim-demucs"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=4)).eval()
    folder = tmp_path_factory.mktemp("saved")
    model.save_pretrained(folder)
    noisy = torch.randn(1, 4000) * 0.1
    with torch.no_grad():
        out = model(noisy)
    save_file({"noisy": noisy, "enhanced": out.enhanced_values, "choice": out.choice}, folder.parent / "expected.safetensors")
    return model, folder, folder.parent / "expected.safetensors"


def test_save_pretrained_writes_safetensors_config_and_code(saved):
    _, folder, _ = saved
    files = {p.name for p in folder.iterdir()}
    assert "model.safetensors" in files and "pytorch_model.bin" not in files
    assert {"configuration_adaslim.py", "modeling_adaslim.py", "macs.py", "losses.py"} <= files
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "adaslim"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_adaslim.AdaSlimConfig",
        "AutoModel": "modeling_adaslim.AdaSlimModel",
    }


def test_round_trip_gives_identical_outputs(saved):
    model, folder, _ = saved
    loaded = AdaSlimModel.from_pretrained(folder)
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    noisy = torch.randn(2, 3000) * 0.1
    with torch.no_grad():
        assert torch.equal(model(noisy).enhanced_values, loaded(noisy).enhanced_values)


def test_pickled_weights_are_refused(saved, tmp_path):
    model, folder, _ = saved
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises((OSError, ValueError)):
        AdaSlimModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="safetensors"):
        AdaSlimModel.from_pretrained(folder, use_safetensors=False)


def test_weights_that_do_not_fit_the_config_are_refused(saved, tmp_path):
    _, folder, _ = saved
    for name in ("model.safetensors",):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["hidden"] = 16
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises((ValueError, RuntimeError), match="(?i)size|shape"):
        AdaSlimModel.from_pretrained(tmp_path)


def hub_cache(root, folder):
    snapshot = root / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    refs = root / f"models--{REPO_ID.replace('/', '--')}" / "refs"
    refs.mkdir()
    (refs / "main").write_text(SNAPSHOT)
    return root


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_offline(code, cache, cwd, package_importable=True):
    """Run ``code`` in a fresh interpreter with HF_HUB_OFFLINE=1 and the Hub cache at ``cache``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHONPATH"))}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_HOME=str(cwd / "hf_home"), OMP_NUM_THREADS="1")
    if package_importable:
        env["PYTHONPATH"] = REPO_ROOT
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_from_pretrained_by_repo_id_from_an_offline_hub_cache(saved, tmp_path):
    _, folder, expected = saved
    cache = hub_cache(tmp_path / "cache", folder)
    result = run_offline(f"""
        import torch
        from safetensors.torch import load_file
        from adaslim_hf import AdaSlimModel
        expected = load_file({str(expected)!r})
        model = AdaSlimModel.from_pretrained({REPO_ID!r})
        with torch.no_grad():
            out = model(expected["noisy"])
        assert torch.equal(out.enhanced_values, expected["enhanced"])
        try:
            AdaSlimModel.from_pretrained("org/does-not-exist")
        except OSError:
            print("missing repo: OSError")
        print("OK")
    """, cache, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout and "missing repo: OSError" in result.stdout


def test_remote_code_loads_where_adaslim_hf_is_not_importable(saved, tmp_path):
    _, folder, expected = saved
    cache = hub_cache(tmp_path / "cache", folder)
    result = run_offline(f"""
        import sys
        sys.modules["adaslim_hf"] = None  # the package is not installed for this user
        try:
            import adaslim_hf
        except ImportError:
            pass
        else:
            raise SystemExit("adaslim_hf should not be importable here")
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel
        try:
            AutoModel.from_pretrained({REPO_ID!r})
        except ValueError as error:
            assert "trust_remote_code" in str(error)
            print("refused without trust")
        model = AutoModel.from_pretrained({REPO_ID!r}, trust_remote_code=True)
        expected = load_file({str(expected)!r})
        with torch.no_grad():
            out = model(expected["noisy"])
        assert torch.equal(out.enhanced_values, expected["enhanced"])
        assert torch.equal(out.choice, expected["choice"])
        print(type(model).__module__)
        print("OK")
    """, cache, tmp_path, package_importable=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout and "refused without trust" in result.stdout
    assert "transformers_modules" in result.stdout
