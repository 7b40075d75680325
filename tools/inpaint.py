"""Inpainting backends behind one interface (`tools.inpainter.Inpainter`): an image, a mask
(255 = repaint) and a prompt in.

`BrushNetInpainter` is BrushEdit's generative backend (`brushedit_inpaint`); `OpenCVInpainter` is a
classical, weight-free fill that can only remove things (OpenCV's and opencv-contrib's methods);
the diffusers conductors (FLUX.1 Fill and Kontext, Qwen-Image-Edit, FLUX.2 klein, SD inpainting)
are in `tools.conductors`. `get_inpainter(name)` picks one by name. Every backend returns
`options.samples` RGB images at the input size. torch, diffusers and cv2 are imported only when a
backend is built or run.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tools.conductors.models import CONDUCTORS
from tools.errors import InvalidRequestError, ModelLoadError
from tools.inpainter import (  # noqa: F401 - the protocol, re-exported for existing imports
    CROP_PADDING,
    WORKING_SIDE,
    Cancel,
    Inpainter,
    InpaintRequest,
    Progress,
    StepWatch,
    _accepts,
    crop_padding,
)
from tools.mask_ops import Mask
from tools.types import EditCategory, resolve_dtype

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = logging.getLogger(__name__)

OPENCV_METHODS = ("fsr_fast", "shiftmap", "telea", "ns", "fsr_best")
"""OpenCV's fills: `cv2.inpaint` (telea, ns: diffusion from the border; fast, but they smear
texture) and opencv-contrib's `cv2.xphoto.inpaint` (fsr_fast, fsr_best: frequency-selective
reconstruction; shiftmap: copies patches from elsewhere). Measured on holes with known truth by
benchmarks/removal_quality.py (numbers in docs/tools.md)."""

DEFAULT_OPENCV_METHOD = "fsr_fast"
"""Best PSNR/SSIM inside the hole of the methods that take under a few seconds (fsr_best is no
better and 15x slower); `telea` is the fast fallback, used when opencv-contrib is missing."""

XPHOTO_MAX_HOLE_PX = 256 * 256
"""Largest hole (in pixels) given to the xphoto fills: their time grows steeply with the hole
(fsr_fast on 2 busy cores: about 1.5 s for 64x64, 15-30 s for 128x128 to 256x256, over a minute
for 384x384), and on large holes they leave blocky fills; larger holes take the fast Telea fill.
The demo's removals (dilated masks of 30-45k px) stay under it."""

RETRY_ORDER = ("fsr_fast", "shiftmap", "telea", "ns")
"""Methods a verifier retry goes through: after a smeared fill, shiftmap (which copies real
texture and is flagged least by the fill-texture check), then the fast diffusion fills.
fsr_best is never chosen by a retry (minutes on a large hole)."""


class OpenCVInpainter(Inpainter):
    """Classical fill from the surroundings: no weights, removals only.

    `method` is one of `OPENCV_METHODS`. Deterministic: the `samples` images it returns are
    identical, and prompt and seed are unused; a retry asks `variant(n)` for the next method.
    """

    name: ClassVar[str] = "opencv"
    categories: ClassVar[frozenset[EditCategory]] = frozenset({EditCategory.REMOVAL})

    def __init__(self, radius: int = 5, method: str = DEFAULT_OPENCV_METHOD) -> None:
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 1:
            raise ValueError(f"`radius` must be an integer >= 1, got {radius!r}")
        if method not in OPENCV_METHODS:
            raise ValueError(f"`method` must be one of {', '.join(OPENCV_METHODS)}, got {method!r}")
        self.radius = radius
        self.method = method

    @classmethod
    def unsupported_message(cls, category: EditCategory) -> str:
        return (
            "The opencv inpainter only removes objects (it fills the mask from its surroundings) "
            f"and cannot do a {category.value} edit"
        )

    def variant(self, retry: int) -> Inpainter:
        """The backend for the `retry`-th inpaint retry: the next method of `RETRY_ORDER`."""
        if retry <= 0:
            return self
        order = [self.method] + [m for m in RETRY_ORDER if m != self.method]
        return type(self)(radius=self.radius, method=order[retry % len(order)])

    def fill(self, image: np.ndarray, mask: Mask) -> np.ndarray:
        """Fill `mask` (255 = hole) of a uint8 RGB array with this backend's method."""
        import cv2

        image = np.ascontiguousarray(image)
        if self.method in ("telea", "ns"):
            flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
            return cv2.inpaint(image, mask, self.radius, flag)
        hole = int(np.count_nonzero(mask))
        if hole > XPHOTO_MAX_HOLE_PX:
            logger.info("a %d px hole is too large for the %s fill (at most %d px); using telea",
                        hole, self.method, XPHOTO_MAX_HOLE_PX)
            return cv2.inpaint(image, mask, self.radius, cv2.INPAINT_TELEA)
        xphoto = getattr(cv2, "xphoto", None)
        if xphoto is None:  # plain opencv-python: Telea, the fast fallback
            logger.warning(
                "the opencv %s fill needs opencv-contrib (cv2.xphoto); using telea instead "
                "(pip install opencv-contrib-python-headless in place of "
                "opencv-python-headless)",
                self.method,
            )
            return cv2.inpaint(image, mask, self.radius, cv2.INPAINT_TELEA)
        flag = {
            "fsr_fast": xphoto.INPAINT_FSR_FAST,
            "fsr_best": xphoto.INPAINT_FSR_BEST,
            "shiftmap": xphoto.INPAINT_SHIFTMAP,
        }[self.method]
        known = np.where(mask > 0, 0, 255).astype(np.uint8)  # xphoto: non-zero = keep
        source = cv2.cvtColor(image, cv2.COLOR_RGB2Lab) if self.method == "shiftmap" else image
        out = np.zeros_like(source)
        xphoto.inpaint(source, known, out, flag)
        if self.method == "shiftmap":
            out = cv2.cvtColor(out, cv2.COLOR_Lab2RGB)
        # the kept pixels stay exactly as they were
        return np.where((mask > 0)[..., None], out, image)

    def _inpaint(self, request: InpaintRequest) -> list[Image.Image]:
        from PIL import Image

        filled = self.fill(np.asarray(request.image), request.mask)
        if request.progress is not None:
            request.progress(1, 1)
        return [Image.fromarray(filled, "RGB") for _ in range(request.options.samples)]


class BrushNetInpainter(Inpainter):
    """BrushEdit's generative backend: `brushedit_inpaint`'s SD1.5 or SDXL BrushNet pipeline.

    SD1.5 works at the image's own size (shrunk to 1024 px at most). SDXL generates at its native
    resolution: the image is scaled, aspect kept, to about `sdxl_working_side`**2 pixels (1024**2)
    and the result is scaled back to the input size.

    Blending follows `options.blending` for every category, removal included. The reference
    README prefers blending off for removal; we get its benefit (no leftover halo) from the
    dilated removal mask instead, because without the blend the whole image goes through the
    VAE and the kept background drops to about 26 dB PSNR, failing the background check.
    """

    name: ClassVar[str] = "brushnet"
    categories: ClassVar[frozenset[EditCategory]] = frozenset(EditCategory)

    def __init__(self, pipeline: Any, sdxl_working_side: int = 1024) -> None:
        if not callable(pipeline):
            raise ValueError(
                f"`pipeline` must be a callable pipeline, got {type(pipeline).__name__}"
            )
        if (
            isinstance(sdxl_working_side, bool)
            or not isinstance(sdxl_working_side, int)
            or not (64 <= sdxl_working_side <= 2048)
        ):
            raise ValueError(
                f"`sdxl_working_side` must be an integer in [64, 2048], got {sdxl_working_side!r}"
            )
        self.pipeline = pipeline
        self.sdxl_working_side = sdxl_working_side
        self.encode_cache: Any = None  # one per inpainter: the verifier's retries share it
        self.compiled = False  # set by from_pretrained(compile=True); the first edit compiles
        self._warmed = False

    @property
    def is_sdxl(self) -> bool:
        """Whether the pipeline's base is SDXL (its UNet has SDXL's `text_time` embedding)."""
        config = getattr(getattr(self.pipeline, "unet", None), "config", None)
        return config is not None and config.get("addition_embed_type") == "text_time"

    @classmethod
    def from_pretrained(
        cls,
        base: str,
        brushnet: str,
        brushnet_subfolder: str | None = None,
        *,
        device: str = "cpu",
        dtype: torch.dtype | str | None = None,
        local_files_only: bool = False,
        cpu_offload: bool = False,
        sdxl_working_side: int = 1024,
        compile: bool = False,
    ) -> BrushNetInpainter:
        """Load an SD1.5 or SDXL base and a BrushNet of the same family (Hub ids, folders, files).

        The UNet, branch and VAE run in `channels_last` on CUDA; `compile` adds `torch.compile` (the first
        edit then compiles, minutes on a CPU: for long-lived processes). Raises `ModelLoadError`
        saying what was tried and how to get the weights.
        """
        import torch

        from brushedit_inpaint import load_pipeline

        torch_dtype = resolve_dtype(dtype) or torch.float32
        what = f"base {base!r} + BrushNet {brushnet!r}" + (
            f" (subfolder {brushnet_subfolder!r})" if brushnet_subfolder else ""
        )
        try:
            pipeline = load_pipeline(
                base,
                brushnet,
                brushnet_subfolder=brushnet_subfolder,
                device=device,
                dtype=torch_dtype,
                local_files_only=local_files_only,
                cpu_offload=cpu_offload,
                compile=compile,
            )
        except Exception as exc:  # any failure here is a missing or mismatched checkpoint
            raise ModelLoadError(
                f"Could not load the BrushNet pipeline from {what}: {exc}. Download the weights "
                f"with `hf download {brushnet} --local-dir <folder>` and "
                f"`hf download {base} --local-dir <folder>` (diffusers format), then "
                "point the BrushNet and base-model settings at those folders.",
                inpainter=cls.name,
            ) from exc
        pipeline.set_progress_bar_config(disable=True)
        inpainter = cls(pipeline, sdxl_working_side=sdxl_working_side)
        inpainter.compiled = compile
        return inpainter

    @classmethod
    def create(cls, **kwargs: Any) -> Inpainter:
        """`BrushNetInpainter(pipeline)` when given one, else `from_pretrained(**kwargs)`."""
        if "pipeline" in kwargs:
            return cls(**kwargs)
        return cls.from_pretrained(**kwargs)

    def pipeline_kwargs(self, request: InpaintRequest) -> dict[str, Any]:
        """The keyword arguments `inpaint` passes to the pipeline (white = repaint)."""
        image, mask, progress = request.image, request.mask, request.progress
        options = request.options.resolved(self.name)  # unset steps and guidance: 50 and 7.5
        import torch
        from PIL import Image

        device = getattr(self.pipeline, "_execution_device", None) or getattr(
            self.pipeline, "device", "cpu"
        )
        if torch.device(device).type == "mps":  # MPS generators are not reproducible
            device = "cpu"
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "image": image,
            "mask_image": Image.fromarray(mask, "L"),
            "negative_prompt": request.negative_prompt,
            "num_inference_steps": options.steps,
            "guidance_scale": options.guidance_scale,
            "brushnet_conditioning_scale": options.conditioning_scale,
            "num_images_per_prompt": options.samples,
            "generator": torch.Generator(device).manual_seed(request.seed),
            "blending": options.blending,
            "output_type": "pil",
        }
        working_side = WORKING_SIDE
        if self.is_sdxl:
            from brushedit_inpaint.processing import native_working_size

            working_side = self.sdxl_working_side
            height, width = native_working_size(
                image.size[1], image.size[0], side=self.sdxl_working_side
            )
            kwargs.update(height=height, width=width)
        if _accepts(self.pipeline, "encode_cache"):
            if self.encode_cache is None:
                from brushedit_inpaint import EncodeCache

                self.encode_cache = EncodeCache()
            kwargs["encode_cache"] = self.encode_cache  # a seed/guidance retry re-encodes nothing
        padding = crop_padding(image.size, mask, working_side)
        if padding is not None and _accepts(self.pipeline, "padding_mask_crop"):
            kwargs["padding_mask_crop"] = padding  # edit a crop around the mask at the working size
        if progress is not None or request.cancel is not None:
            kwargs["callback_on_step_end"] = StepWatch(
                progress, request.cancel, options.steps, self.name
            )
        return kwargs

    def _inpaint(self, request: InpaintRequest) -> list[Image.Image]:
        kwargs = self.pipeline_kwargs(request)
        first_compiled = self.compiled and not self._warmed
        started = time.perf_counter()
        try:
            output = self.pipeline(**kwargs)
        except OSError as exc:  # weights fetched lazily (offload hooks, sharded files)
            raise ModelLoadError(
                f"The BrushNet pipeline could not read its weights: {exc}", inpainter=self.name
            ) from exc
        watch = kwargs.get("callback_on_step_end")
        if isinstance(watch, StepWatch):
            watch.raise_if_cancelled()
        if first_compiled:
            self._warmed = True
            logger.info("first BrushNet edit with torch.compile took %.1f s, compilation included",
                        time.perf_counter() - started)
        images = list(output.images if hasattr(output, "images") else output[0])
        size = request.image.size
        return [im if im.size == size else im.resize(size) for im in images]


INPAINTERS: dict[str, type[Inpainter]] = {
    BrushNetInpainter.name: BrushNetInpainter,
    OpenCVInpainter.name: OpenCVInpainter,
    **CONDUCTORS,
}
"""Inpainter classes by `name`."""


def get_inpainter(name: str, **kwargs: Any) -> Inpainter:
    """Build the inpainter registered as `name` via its `create(**kwargs)`."""
    try:
        cls = INPAINTERS[name]
    except (KeyError, TypeError):
        raise InvalidRequestError(
            f"Unknown inpainter {name!r}. Available: {', '.join(sorted(INPAINTERS))}"
        ) from None
    return cls.create(**kwargs)
