"""The models as Ray Serve deployments, and the handles the graph's nodes call them through.

`InpainterServer` and `SegmenterServer` are the deployments' classes: each replica builds the
models from `Settings` (on first use, as `build_components` does) and serves them by name.
`ServedInpainter` and `ServedSegmenter` wrap a deployment handle in the interface the run
context's models have (`inpaint`, `variant`, `method`; `segment`), so the graph runs anywhere
(the API's process, a notebook) while the models sit on GPU replicas. `served_context` swaps
them into a context. Diffusion progress streams back step by step, a cancelled call stops the
replica's pipeline at its next step, and each served call is announced on the run's event
stream (`{"type": "served", "replica": ...}`) so a client sees which replica painted its edit.

Ray is imported only where a deployment is built or called; nothing here runs without `serve`.
"""

from __future__ import annotations

import dataclasses
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from tools.errors import BrushEditError, ConfigError, EditCancelledError
from tools.inpainter import Inpainter, InpaintRequest
from tools.segment import Segmentation, Segmenter
from tools.types import EditCategory

if TYPE_CHECKING:
    from graphs.context import Context
    from graphs.settings import Settings

INPAINTER_DEPLOYMENT = "Inpainter"
SEGMENTER_DEPLOYMENT = "Segmenter"
CALL_TIMEOUT_S = 3600.0
"""Longest a served model call may take (a large FLUX edit on a busy GPU)."""


def deployment_options(settings: Settings) -> dict[str, Any]:
    """Replicas, autoscaling bounds and resources of the model deployments, from settings.

    Fixed `serve_replicas` replicas, or autoscaling between `serve_min_replicas` and
    `serve_max_replicas` when the maximum is set; each replica holds `serve_gpus_per_replica`
    GPUs and `serve_cpus_per_replica` CPUs and runs `serve_max_ongoing_requests` calls at once
    (1: a diffusion pipeline is not safe to run twice at once on one GPU).
    """
    actor = {"num_cpus": settings.serve_cpus_per_replica}
    if settings.serve_gpus_per_replica:
        actor["num_gpus"] = settings.serve_gpus_per_replica
    options: dict[str, Any] = {"ray_actor_options": actor,
                               "max_ongoing_requests": settings.serve_max_ongoing_requests}
    if settings.serve_max_replicas is None:
        options["num_replicas"] = settings.serve_replicas
        return options
    low = settings.serve_min_replicas
    if low > settings.serve_max_replicas:
        raise ConfigError(f"BRUSHEDIT_SERVE_MIN_REPLICAS ({low}) is above "
                          f"BRUSHEDIT_SERVE_MAX_REPLICAS ({settings.serve_max_replicas})")
    options["autoscaling_config"] = {
        "min_replicas": low, "max_replicas": settings.serve_max_replicas,
        "initial_replicas": min(max(settings.serve_replicas, low), settings.serve_max_replicas),
        "target_ongoing_requests": settings.serve_max_ongoing_requests,
    }
    return options


QUEUED_EDITS_PER_CALL = 4
"""Edits the API replica admits per model call the deployments run at once: its edits wait
on a replica (Ray Serve queues them) holding only their images, and spend part of their time
in the planner and verifier, so a few per call keep every replica busy."""


def served_edit_slots(settings: Settings) -> int:
    """Edits the API replica runs at once (`graphs.admission`): `max_concurrent_edits` when
    set, else enough to keep the model deployments busy (their most replicas times
    `serve_max_ongoing_requests`, `QUEUED_EDITS_PER_CALL` each), never fewer than its cores'
    default. The cores of the machine that runs the ingress say nothing about the replicas'."""
    if settings.max_concurrent_edits is not None:
        return settings.max_concurrent_edits
    replicas = settings.serve_max_replicas or settings.serve_replicas
    calls = replicas * settings.serve_max_ongoing_requests
    return max(settings.edit_slots(), min(1024, QUEUED_EDITS_PER_CALL * calls))


def _replica_context(
    settings: Settings, *, segmenter: bool
) -> tuple[Context, tempfile.TemporaryDirectory]:
    """The models a replica serves, built as `build_components` builds them (lazily), and the
    scratch folder its stores point at (a replica keeps no sessions or images): the folder is
    removed when the replica's server object goes or its process exits."""
    from graphs.components import build_components

    scratch = tempfile.TemporaryDirectory(prefix="brushedit-replica-")
    context = build_components(settings.model_copy(update={"data_dir": scratch.name}),
                               planner="rules", segmenter=segmenter, persist=False)
    return context, scratch


def _replica_id() -> str:
    from ray import serve

    return serve.get_replica_context().replica_id.unique_id


class _Replica:
    """What both deployments' replicas hold: their models and a scratch folder for the stores."""

    SEGMENTER: ClassVar[bool]

    def __init__(self, settings: Settings) -> None:
        self.context, self._scratch = _replica_context(settings, segmenter=self.SEGMENTER)

    def __del__(self) -> None:
        """Ray Serve calls this as it stops the replica: the scratch folder goes with it."""
        scratch = getattr(self, "_scratch", None)  # None when __init__ failed
        if scratch is not None:
            scratch.cleanup()


class InpainterServer(_Replica):
    """A replica of the inpainter deployment: every inpainter of the registry, by name."""

    SEGMENTER = False

    def _inpainter(self, name: str, retry: int) -> Any:
        from graphs.handles import load_inpainter

        return load_inpainter(self.context.inpainters, name).variant(retry)

    def describe(self, name: str, retry: int = 0) -> dict[str, Any]:
        """What a node asks before painting: the backend's categories and its method."""
        inpainter = self._inpainter(name, retry)
        return {"name": name, "categories": sorted(c.value for c in inpainter.categories),
                "method": getattr(inpainter, "method", None), "replica": _replica_id()}

    def inpaint(self, name: str, retry: int, call: dict[str, Any]) -> Iterator[tuple]:
        """Stream `("progress", step, total)` items, then `("result", images, replica)` or
        `("error", BrushEditError)`; closing the stream stops the pipeline at its next step."""
        events: queue.Queue[tuple] = queue.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                images = self._inpainter(name, retry).inpaint(
                    **call, progress=lambda step, total, *_: events.put(
                        ("progress", int(step), int(total))), cancel=stop.is_set)
                events.put(("result", images, _replica_id()))
            except BrushEditError as exc:
                events.put(("error", exc))
            except BaseException as exc:  # a bug: raised to the caller as Ray reports it
                events.put(("crash", exc))

        threading.Thread(target=work, name="inpaint", daemon=True).start()
        try:
            while True:
                item = events.get()
                if item[0] == "crash":
                    raise item[1]
                yield item
                if item[0] != "progress":
                    return
        finally:
            stop.set()


class SegmenterServer(_Replica):
    """A replica of the segmenter deployment (GroundingDINO + SAM, loaded on first use)."""

    SEGMENTER = True

    def segment(self, image: Any, phrase: str, options: dict[str, Any]) -> tuple:
        """`("result", Segmentation, replica)` or `("error", BrushEditError)`."""
        try:
            return "result", self.context.segmenter.segment(image, phrase, **options), \
                _replica_id()
        except BrushEditError as exc:
            return "error", exc


# -- the graph's side ---------------------------------------------------------------------------


def _announce(component: str, replica: str) -> None:
    """Tell the run's event stream which replica served a call (nothing outside a run)."""
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()({"type": "served", "component": component, "replica": replica})
    except Exception:  # not inside a graph run (a direct call): nobody to tell
        return


def _unwrapped(exc: BaseException) -> BaseException:
    """The replica's own error inside Ray's wrapper (a `RayTaskError` keeps it as `cause`)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class ServedInpainter(Inpainter):
    """An inpainter that runs on the inpainter deployment's replicas.

    The checks of `Inpainter.inpaint` run here, before anything travels; the backend's
    categories and retry method are asked once per retry and remembered.
    """

    name: ClassVar[str] = "served"

    def __init__(self, handle: Any, name: str, retry: int = 0,
                 described: dict[int, dict[str, Any]] | None = None) -> None:
        self.handle, self.retry = handle, retry
        self.name = name  # type: ignore[misc] - the registry name it stands for
        self._described = described if described is not None else {}
        self._lock = threading.Lock()

    def _describe(self) -> dict[str, Any]:
        with self._lock:
            if self.retry not in self._described:
                self._described[self.retry] = self._call(
                    lambda: self.handle.describe.remote(self.name, self.retry).result(
                        timeout_s=CALL_TIMEOUT_S))
            return self._described[self.retry]

    @property
    def categories(self) -> frozenset[EditCategory]:  # type: ignore[override]
        return frozenset(EditCategory(c) for c in self._describe()["categories"])

    @property
    def method(self) -> str | None:
        return self._describe().get("method")

    def check_category(self, category: EditCategory | str) -> None:  # type: ignore[override]
        """The registered backend's class decides, as in the graph's own check (the base
        class's check reads a class attribute, which a proxy's categories are not)."""
        from tools.inpaint import INPAINTERS as CLASSES

        CLASSES[self.name].check_category(category)

    def variant(self, retry: int) -> Inpainter:
        return ServedInpainter(self.handle, self.name, retry, self._described)

    def _inpaint(self, request: InpaintRequest) -> list[Any]:
        call = {"image": request.image, "mask": request.mask, "prompt": request.prompt,
                "category": request.category, "options": request.options,
                "seed": request.seed, "negative_prompt": request.negative_prompt}
        stream = self.handle.options(stream=True).inpaint.remote(self.name, self.retry, call)
        try:
            for item in stream:
                if item[0] == "progress":
                    if request.progress is not None:
                        request.progress(item[1], item[2])
                    if request.cancel is not None and request.cancel():
                        stream.cancel()
                        raise EditCancelledError("the edit was cancelled", inpainter=self.name,
                                                 step=item[1], total=item[2])
                elif item[0] == "error":
                    raise item[1]
                else:
                    _announce("inpainter", item[2])
                    return list(item[1])
        except BrushEditError:
            raise
        except Exception as exc:
            raise _unwrapped(exc) from None
        raise BrushEditError(f"the {self.name} inpainter's replica ended without an answer")

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            raise _unwrapped(exc) from None


class ServedSegmenter(Segmenter):
    """A segmenter that runs on the segmenter deployment's replicas."""

    name: ClassVar[str] = "served"

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def _segment(self, image: Any, prompt: str, thresholds: list[float], text_threshold: float,
                 union: bool) -> Segmentation:
        options = {"box_thresholds": thresholds, "text_threshold": text_threshold,
                   "union": union}
        try:
            answer = self.handle.segment.remote(image, prompt, options).result(
                timeout_s=CALL_TIMEOUT_S)
        except Exception as exc:
            raise _unwrapped(exc) from None
        if answer[0] == "error":
            raise answer[1]
        _announce("segmenter", answer[2])
        return answer[1]


def served_context(context: Context, inpainter: Any, segmenter: Any | None,
                   edit_slots: int | None = None) -> Context:
    """`context` with every inpainter served by the `inpainter` deployment handle and the
    segmenter by the `segmenter` one (None: no segmenter, user masks only); `edit_slots`
    edits at once (`served_edit_slots`) instead of the context's own bound."""
    from graphs.admission import EditSlots

    return dataclasses.replace(
        context,
        slots=EditSlots(edit_slots) if edit_slots is not None else context.slots,
        inpainters={name: ServedInpainter(inpainter, name) for name in context.inpainters},
        segmenter=ServedSegmenter(segmenter) if segmenter is not None else None,
    )
