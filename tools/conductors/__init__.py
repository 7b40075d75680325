"""Today's diffusers editors as conductors: FLUX.1 Fill, FLUX.1 Kontext, Qwen-Image-Edit,
FLUX.2 klein and any Stable Diffusion inpainting checkpoint, behind the `Inpainter` protocol.

Our agents find the mask and write the prompt the conductor wants (a caption or an instruction,
`tools.registry.BackendSpec.prompt_style`); the conductor paints inside the mask at its native
size; the result goes back onto the photo with BrushNet's blur blend, so the background stays
ours. `load_conductor(name, model)` loads one; `weights_status(name)` tells the doctor whether
its weights are here. Cheap to import: names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.lazy import lazy_exports

if TYPE_CHECKING:
    from tools.conductors.base import (
        RAW_INFO_KEY,
        RUN_INFO_KEY,
        ConductorRun,
        DiffusersConductor,
        Knobs,
        raw_output,
        resolve_knobs,
        retry_changes,
        run_record,
    )
    from tools.conductors.framing import (
        Framing,
        blend_zone,
        composite,
        frame_edit,
        native_size,
        place,
    )
    from tools.conductors.loading import (
        WeightsLocation,
        WeightsStatus,
        conductor_spec,
        default_dtype,
        fix_command,
        load_pipeline,
        locate_weights,
        weights_status,
    )
    from tools.conductors.models import (
        CONDUCTORS,
        Flux2KleinConductor,
        FluxFillConductor,
        FluxKontextConductor,
        QwenImageEditConductor,
        SDInpaintConductor,
        load_conductor,
    )

_EXPORTS = {
    **dict.fromkeys(
        ["RAW_INFO_KEY", "RUN_INFO_KEY", "ConductorRun", "DiffusersConductor", "Knobs",
         "raw_output", "resolve_knobs", "retry_changes", "run_record"],
        "tools.conductors.base",
    ),
    **dict.fromkeys(
        ["Framing", "blend_zone", "composite", "frame_edit", "native_size", "place"],
        "tools.conductors.framing",
    ),
    **dict.fromkeys(
        ["WeightsLocation", "WeightsStatus", "conductor_spec", "default_dtype", "fix_command",
         "load_pipeline", "locate_weights", "weights_status"],
        "tools.conductors.loading",
    ),
    **dict.fromkeys(
        ["CONDUCTORS", "Flux2KleinConductor", "FluxFillConductor", "FluxKontextConductor",
         "QwenImageEditConductor", "SDInpaintConductor", "load_conductor"],
        "tools.conductors.models",
    ),
}  # fmt: skip

__all__ = [
    "CONDUCTORS",
    "RAW_INFO_KEY",
    "RUN_INFO_KEY",
    "ConductorRun",
    "DiffusersConductor",
    "Flux2KleinConductor",
    "FluxFillConductor",
    "FluxKontextConductor",
    "Framing",
    "Knobs",
    "QwenImageEditConductor",
    "SDInpaintConductor",
    "WeightsLocation",
    "WeightsStatus",
    "blend_zone",
    "composite",
    "conductor_spec",
    "default_dtype",
    "fix_command",
    "frame_edit",
    "load_conductor",
    "load_pipeline",
    "locate_weights",
    "native_size",
    "place",
    "raw_output",
    "resolve_knobs",
    "retry_changes",
    "run_record",
    "weights_status",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
