"""The paper's model-based measures, loaded once per run: CLIP similarity, LPIPS and quality scores.

Every scorer loads from a local folder or the Hugging Face cache and downloads nothing unless the
run allows it. A scorer that cannot load is not an error: its metrics are `None` and `missing`
says why (the package is not installed, the weights are not cached), so a partial environment
still gives the pixel metrics.

Scales follow the benchmarks' own evaluators: CLIP similarity is torchmetrics' CLIPScore,
`max(100 * cos(image, text), 0)` with `openai/clip-vit-large-patch14`; LPIPS is the `lpips`
package's SqueezeNet variant on images in [-1, 1] (what torchmetrics wraps in both evaluators).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

DEFAULT_CLIP = "openai/clip-vit-large-patch14"

MODEL_METRICS = ("lpips_unedited", "clip_whole", "clip_edited")
QUALITY_METRICS = ("image_reward", "hps_v21", "aesthetic")


class ScorerSettings(BaseModel):
    """Which models measure a run; part of the run's identity (a change refuses to resume)."""

    clip_model: str = Field(default=DEFAULT_CLIP, description="Hub id or local folder.")
    lpips_net: str = Field(default="squeeze", description="LPIPS backbone (squeeze, alex, vgg).")
    aesthetic_head: str | None = Field(
        default=None,
        description="LAION aesthetic linear head (sa_0_4_vit_l_14_linear.pth) on CLIP ViT-L/14 "
        "image embeddings; None: no aesthetic score.",
    )
    quality: bool = Field(default=True, description="Try ImageReward and HPS v2.1 when installed.")
    allow_download: bool = Field(default=False, description="Let scorers fetch missing weights.")


class Scorers:
    """The loaded scorers of one run. Build with `Scorers.load`; each call scores one image."""

    def __init__(self, settings: ScorerSettings, device: str = "cpu") -> None:
        self.settings = settings
        self.device = device
        self.missing: dict[str, str] = {}
        self._clip: Any = None
        self._processor: Any = None
        self._lpips: Any = None
        self._aesthetic: Any = None
        self._image_reward: Any = None
        self._hps: Any = None

    @classmethod
    def load(cls, settings: ScorerSettings, device: str | None = None) -> Scorers:
        """Load every scorer that can be loaded; record why the others cannot."""
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        scorers = cls(settings, device)
        scorers._load_clip()
        scorers._load_lpips()
        scorers._load_aesthetic()
        if settings.quality:
            scorers._load_image_reward()
            scorers._load_hps()
        else:
            for name in ("image_reward", "hps_v21"):
                scorers.missing[name] = "quality scores were switched off for this run"
        return scorers

    # -- loading -------------------------------------------------------------------------------

    def _load_clip(self) -> None:
        from transformers import CLIPModel, CLIPProcessor

        name = self.settings.clip_model
        try:
            local = not self.settings.allow_download
            self._processor = CLIPProcessor.from_pretrained(name, local_files_only=local)
            self._clip = CLIPModel.from_pretrained(name, local_files_only=local)
            self._clip.to(self.device).eval()
        except Exception as exc:  # not cached, not a CLIP folder: the same answer for the user
            reason = (
                f"CLIP model {name!r} could not be loaded from a local folder or the Hugging "
                f"Face cache ({type(exc).__name__}: {_short(exc)}); fetch it with "
                f"`hf download {name}` or pass --clip-model FOLDER"
            )
            self._clip = self._processor = None
            for metric in ("clip_whole", "clip_edited"):
                self.missing[metric] = reason

    def _load_lpips(self) -> None:
        try:
            import lpips
        except ImportError as exc:
            self.missing["lpips_unedited"] = (
                f"the `lpips` package is not installed ({_short(exc)}); install the extra "
                "`pip install 'brushedit-agents[lpips]'` (it brings torchvision)"
            )
            return
        net = self.settings.lpips_net

        def load() -> Any:
            if not self.settings.allow_download and not _torch_hub_cached(net):
                raise FileNotFoundError(
                    f"the {net} backbone weights are not in the torch hub cache and downloads "
                    "are not allowed (--allow-download)"
                )
            return lpips.LPIPS(net=net, verbose=False).to(self.device).eval()

        self._lpips = self._try_load("lpips_unedited", f"LPIPS ({net})", load)

    def _load_aesthetic(self) -> None:
        path = self.settings.aesthetic_head
        if path is None:
            self.missing["aesthetic"] = (
                "no aesthetic head given (--aesthetic-head sa_0_4_vit_l_14_linear.pth, the LAION "
                "predictor on CLIP ViT-L/14 image embeddings)"
            )
            return
        if self._clip is None:
            self.missing["aesthetic"] = "the aesthetic score needs the CLIP model, which is missing"
            return
        import torch

        def load() -> Any:
            state = torch.load(path, map_location="cpu", weights_only=True)
            weight = state["weight"]
            head = torch.nn.Linear(weight.shape[1], weight.shape[0])
            head.load_state_dict(state)
            return head.to(self.device).eval()

        self._aesthetic = self._try_load("aesthetic", f"the aesthetic head {path}", load)

    def _load_image_reward(self) -> None:
        try:
            import ImageReward
        except ImportError:
            self.missing["image_reward"] = (
                "the `image-reward` package is not installed (pip install image-reward)"
            )
            return
        self._image_reward = self._try_load(
            "image_reward",
            "ImageReward-v1.0",
            lambda: ImageReward.load("ImageReward-v1.0", device=self.device),
        )

    def _load_hps(self) -> None:
        try:
            import hpsv2
        except ImportError:
            self.missing["hps_v21"] = "the `hpsv2` package is not installed (pip install hpsv2)"
            return
        self._hps = hpsv2

    def _try_load(self, metric: str, what: str, load: Callable[[], Any]) -> Any:
        """`load()`'s model, or None with `missing[metric]` saying that `what` failed and why."""
        try:
            return load()
        except Exception as exc:  # any failure leaves the metric out, with its reason
            self.missing[metric] = (
                f"{what} could not be loaded ({type(exc).__name__}: {_short(exc)})"
            )
            return None

    # -- scoring -------------------------------------------------------------------------------

    def clip_score(self, image: Any, text: str) -> float | None:
        """CLIPScore: `max(100 * cos(image, text), 0)`; None without a CLIP model."""
        if self._clip is None:
            return None
        import torch

        max_length = int(self._clip.config.text_config.max_position_embeddings)
        inputs = self._processor(
            text=[text], images=[_pil(image)], return_tensors="pt", padding=True,
            truncation=True, max_length=max_length,
        )  # fmt: skip
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            out = self._clip(**inputs)
        cos = float((out.image_embeds * out.text_embeds).sum(-1).item())
        return max(100.0 * cos, 0.0)

    def lpips(self, a: np.ndarray, b: np.ndarray) -> float | None:
        """LPIPS of two float (H, W, 3) images in [0, 1]; None without the package."""
        if self._lpips is None:
            return None
        import torch

        def tensor(x: np.ndarray) -> Any:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)
            return (t.unsqueeze(0) * 2 - 1).to(self.device)

        with torch.no_grad():
            return float(self._lpips(tensor(a), tensor(b)).item())

    def quality(self, image: Any, prompt: str) -> dict[str, float | None]:
        """ImageReward, HPS v2.1 and the aesthetic score of one result (None where missing)."""
        pil = _pil(image)
        scores: dict[str, float | None] = {name: None for name in QUALITY_METRICS}
        if self._image_reward is not None:
            reward = self._image_reward.score(prompt, pil)
            scores["image_reward"] = float(reward[0] if isinstance(reward, list) else reward)
        if self._hps is not None:
            try:
                scores["hps_v21"] = float(self._hps.score(pil, prompt, hps_version="v2.1")[0])
            except Exception as exc:  # hpsv2 loads its weights on the first call
                self.missing["hps_v21"] = f"HPS v2.1 failed ({type(exc).__name__}: {_short(exc)})"
                self._hps = None
        if self._aesthetic is not None:
            scores["aesthetic"] = self._aesthetic_score(pil)
        return scores

    def _aesthetic_score(self, image: Any) -> float:
        import torch

        inputs = self._processor(images=[image], return_tensors="pt")
        with torch.no_grad():
            out = self._clip.get_image_features(pixel_values=inputs["pixel_values"].to(self.device))
            feats = out if isinstance(out, torch.Tensor) else out.pooler_output
            feats = feats / feats.norm(dim=-1, keepdim=True)
            return float(self._aesthetic(feats).item())


def _pil(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")


def _torch_hub_cached(net: str) -> bool:
    """Whether torchvision's weights for the LPIPS backbone `net` are in the torch hub cache."""
    import torch

    prefixes = {"squeeze": "squeezenet1_1", "alex": "alexnet", "vgg": "vgg16"}
    folder = torch.hub.get_dir()
    from pathlib import Path

    checkpoints = Path(folder) / "checkpoints"
    prefix = prefixes.get(net, net)
    return checkpoints.is_dir() and any(p.name.startswith(prefix) for p in checkpoints.iterdir())


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:240] or type(exc).__name__


# -- one result, every measure -----------------------------------------------------------------


def measure(
    source: Any, result: Any, mask: np.ndarray, prompt: str, scorers: Scorers | None
) -> dict[str, float | None]:
    """Every metric of one edit against the benchmark's mask (uint8, 255 = edited).

    Background fidelity (PSNR, MSE, SSIM, LPIPS) is measured on the unedited region: both images
    times (1 - mask), PSNR/MSE normalised by the unmasked pixel count (`tools.metrics`). With no
    unedited pixel at all these are None, as the benchmark's evaluator leaves them (nan). CLIP
    similarity is of the target caption and the whole result, and the result times the mask.
    """
    from tools.metrics import masked_mse, masked_psnr, masked_ssim, to_float_image

    src, res = to_float_image(source), to_float_image(result)
    edit = (np.asarray(mask) > 0)[..., None]
    keep_fraction = float(1.0 - edit.mean())
    metrics: dict[str, float | None] = dict.fromkeys(
        ("psnr_unedited", "mse_unedited", "ssim_unedited", "lpips_unedited")
    )
    if keep_fraction > 0:
        metrics["psnr_unedited"] = masked_psnr(src, res, mask)
        metrics["mse_unedited"] = masked_mse(src, res, mask)
        metrics["ssim_unedited"] = masked_ssim(src, res, mask)
        if scorers is not None:
            metrics["lpips_unedited"] = scorers.lpips(src * ~edit, res * ~edit)
    metrics["clip_whole"] = scorers.clip_score(result, prompt) if scorers else None
    metrics["clip_edited"] = None
    if scorers is not None and edit.any():
        inside = (np.asarray(_pil(result)) * edit).astype(np.uint8)
        metrics["clip_edited"] = scorers.clip_score(inside, prompt)
    quality = scorers.quality(result, prompt) if scorers else dict.fromkeys(QUALITY_METRICS)
    metrics.update(quality)
    metrics["unedited_fraction"] = keep_fraction
    return metrics
