"""Importing the tools modules must not pull in the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys


def test_tools_modules_import_without_torch_transformers_diffusers_or_cv2():
    code = (
        "import json, sys\n"
        "import tools, tools.masks, tools.metrics, tools.segment, tools.inpaint\n"
        "import tools.conductors, tools.conductors.models, tools.alignment, tools.registry\n"
        "heavy = ['torch', 'transformers', 'diffusers', 'cv2', 'brushedit_inpaint']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_inpainter_names_come_from_the_registry():
    """Every surface's inpainter choices are the registry's names (one source of truth)."""
    from typing import get_args

    from evals.bench import BenchConfig
    from evals.cli import InpainterChoice
    from interfaces.server_commands import InpainterChoice as ServeChoice
    from tools.registry import INPAINTER_NAMES, INPAINTERS
    from tools.types import EditOptions, InpainterName

    assert get_args(InpainterName) == INPAINTER_NAMES == tuple(INPAINTERS)
    assert get_args(InpainterChoice) == INPAINTER_NAMES
    assert tuple(choice.value for choice in ServeChoice) == INPAINTER_NAMES
    schema = EditOptions.model_json_schema()["properties"]["inpainter"]
    assert tuple(schema["enum"]) == INPAINTER_NAMES
    assert get_args(BenchConfig.model_fields["inpainter"].annotation) == INPAINTER_NAMES
    assert all(set(spec.uses_options) <= set(EditOptions.model_fields)
               for spec in INPAINTERS.values())
    from tools.inpaint import INPAINTERS as CLASSES
    from tools.types import EditCategory

    assert tuple(sorted(CLASSES)) == tuple(sorted(INPAINTER_NAMES))
    for name, cls in CLASSES.items():  # the light table says what the classes can do
        assert cls.categories == {EditCategory(c) for c in INPAINTERS[name].categories}
