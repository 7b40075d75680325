"""Importing the tools modules must not pull in the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys


def test_tools_modules_import_without_torch_transformers_diffusers_or_cv2():
    code = (
        "import json, sys\n"
        "import tools, tools.masks, tools.metrics, tools.segment, tools.inpaint\n"
        "heavy = ['torch', 'transformers', 'diffusers', 'cv2', 'brushedit_inpaint']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
