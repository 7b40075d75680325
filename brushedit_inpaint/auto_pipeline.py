# Copyright 2025 The BrushEdit-Agents authors. Apache-2.0.
"""Our pipelines in diffusers' `AutoPipelineForInpainting` table, so diffusers' Auto classes find them.

diffusers has no `register` API for its Auto pipelines: `AutoPipelineForInpainting` looks a pipeline's class name up
in `diffusers.pipelines.auto_pipeline.AUTO_INPAINT_PIPELINES_MAPPING` (model name -> class), the table diffusers
itself extends at import for optional pipelines (Kolors). Each BrushNet pipeline adds itself there under its own
model name when its module is imported; an existing entry of that name is never replaced.

What that gives (diffusers 0.42.1): `AutoPipelineForInpainting.from_pipe(pipe)` on a BrushNet pipeline returns the
same class with the same components (`from_pipe(pipe, scheduler=...)` swaps one), and
`AutoPipelineForInpainting.from_pretrained(folder)` loads a folder whose `model_index.json` names our class as a
plain string. A folder written by our `save_pretrained` names it as `["<file>", "<class>"]` (diffusers' convention
for a pipeline whose code the folder carries), which `DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)` reads but the Auto classes do not: they never load code from a folder.
"""

from __future__ import annotations

AUTO_INPAINT_NAMES = {
    "StableDiffusionBrushNetPipeline": "stable-diffusion-brushnet",
    "StableDiffusionXLBrushNetPipeline": "stable-diffusion-xl-brushnet",
}
"""The model name each BrushNet pipeline has in diffusers' Auto tables (diffusers' style: family, then variant)."""


def register_auto_pipeline(pipeline_cls: type) -> str:
    """Add `pipeline_cls` to `AUTO_INPAINT_PIPELINES_MAPPING` under its model name; return that name.

    Idempotent (a re-imported class replaces its earlier self). Raises a `ValueError` if the name is already taken by another class (a second package registering
    under ours), rather than replacing it.
    """
    from diffusers.pipelines.auto_pipeline import AUTO_INPAINT_PIPELINES_MAPPING

    name = AUTO_INPAINT_NAMES[pipeline_cls.__name__]
    registered = AUTO_INPAINT_PIPELINES_MAPPING.get(name)
    if registered is not None and registered.__name__ != pipeline_cls.__name__:
        raise ValueError(
            f"diffusers' AUTO_INPAINT_PIPELINES_MAPPING already maps {name!r} to {registered.__module__}."
            f"{registered.__name__}; {pipeline_cls.__name__} was not registered."
        )
    AUTO_INPAINT_PIPELINES_MAPPING[name] = pipeline_cls
    return name
