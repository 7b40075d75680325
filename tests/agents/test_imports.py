from __future__ import annotations

import subprocess
import sys


def test_import_agents_is_cheap():
    code = (
        "import sys, agents, agents.vlm, agents.rules, agents.classify, agents.box\n"
        "heavy = {'torch', 'transformers', 'diffusers', 'langchain_core'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_prompts_are_packaged():
    from agents.prompting import load_prompt

    for name in ("classify", "identify", "caption", "box", "verify"):
        assert load_prompt(f"{name}_system") and load_prompt(f"{name}_user")
