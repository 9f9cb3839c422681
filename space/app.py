"""The AdaSlim speech-enhancement demo as a Hugging Face Space (Gradio SDK).

Locally, from a checkout (after `bash scripts/bootstrap.sh --dev`, or with `pip install -e '.[demo]'`):

    .venv/bin/python space/app.py          # http://127.0.0.1:7860, offline, the packaged default model

On a Space the package folder ``adaslim_hf/`` and ``examples/`` sit next to this file (see README.md here).
Environment: ADASLIM_MODEL (a save_pretrained folder or Hub id; default: the packaged model),
ADASLIM_MAX_SECONDS (longest input accepted, default 600). All the app's code is ``adaslim_hf.demo``.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
HERE = Path(__file__).resolve().parent
for root in (HERE, HERE.parent):  # a Space (package next to this file) or a source checkout
    if (root / "adaslim_hf" / "__init__.py").is_file():
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        break

from adaslim_hf.demo import DEFAULT_MAX_SECONDS, DemoEngine, find_examples, launch_demo

if __name__ == "__main__":
    examples = find_examples(HERE / "examples") or find_examples(HERE.parent / "examples")
    engine = DemoEngine(os.environ.get("ADASLIM_MODEL") or None,
                        max_seconds=float(os.environ.get("ADASLIM_MAX_SECONDS", DEFAULT_MAX_SECONDS)) or None)
    # Spaces set GRADIO_SERVER_NAME (0.0.0.0) for their proxy; anywhere else this machine only
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1") if os.environ.get("SPACE_ID") else "127.0.0.1"
    launch_demo(engine, host=host, port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), examples=examples)
