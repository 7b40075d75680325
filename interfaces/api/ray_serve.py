"""The HTTP API as a Ray Serve application: `brushedit serve --ray ADDRESS`, or
`serve run docs/serve_config.yaml`.

Three deployments: `Api` (the ingress: the same FastAPI app `create_app` builds, running the
graph) and the two model deployments of `graphs.serving` (`Inpainter`, `Segmenter`), whose
handles the API's run context calls instead of loading models itself. Replicas, GPUs and
autoscaling bounds of the model deployments come from settings (`BRUSHEDIT_SERVE_*`). The
application is built from `Settings` in the process that builds it (this command, or the
cluster's builder task for `serve run`, whose `runtime_env` carries the settings as
`BRUSHEDIT_*` variables), and every deployment receives that `Settings` object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from interfaces.common import settings_components_factory

if TYPE_CHECKING:
    from graphs.settings import Settings

APP_NAME = "brushedit"
INGRESS_CPUS = 0.0
"""The API replica mostly waits on the model replicas: it reserves no CPU of its own."""


class ApiServer:
    """The ingress deployment's class: the HTTP API over served models."""

    def __init__(self, settings: Settings, inpainter: Any, segmenter: Any,
                 default_inpainter: str | None = None, planner: str | None = None) -> None:
        self.settings = settings
        self.handles = (inpainter, segmenter)
        self.chosen = {"inpainter": default_inpainter, "planner": planner}

    def __serve_build_asgi_app__(self) -> Any:
        from graphs.serving import served_context, served_edit_slots
        from interfaces.api.app import create_app

        local = settings_components_factory(self.settings, **self.chosen)
        slots = served_edit_slots(self.settings)

        def components() -> Any:
            return served_context(local(), *self.handles, edit_slots=slots)

        return create_app(components, self.settings)


def build_application(settings: Settings, *, inpainter: str | None = None,
                      planner: str | None = None) -> Any:
    """The Serve application: the API bound to the inpainter and segmenter deployments."""
    from ray import serve

    from graphs.serving import (
        INPAINTER_DEPLOYMENT,
        SEGMENTER_DEPLOYMENT,
        InpainterServer,
        SegmenterServer,
        deployment_options,
    )

    options = deployment_options(settings)
    models = [serve.deployment(cls, name=name).options(**options).bind(settings)
              for cls, name in ((InpainterServer, INPAINTER_DEPLOYMENT),
                                (SegmenterServer, SEGMENTER_DEPLOYMENT))]
    api = serve.deployment(serve.ingress()(ApiServer), name="Api",
                           ray_actor_options={"num_cpus": INGRESS_CPUS})
    return api.bind(settings, *models, inpainter, planner)


def build_app(args: dict[str, Any]) -> Any:
    """The application builder `serve run` imports (`interfaces.api.ray_serve:build_app`).

    `args` may name the default `inpainter` and the `planner`; everything else is read from
    the `BRUSHEDIT_*` variables of the application's `runtime_env`.
    """
    from graphs.settings import load_settings

    unknown = sorted(set(args) - {"inpainter", "planner"})
    if unknown:
        from tools.errors import ConfigError

        raise ConfigError(f"unknown application args {', '.join(unknown)}; known: inpainter, "
                          "planner (set everything else as BRUSHEDIT_* variables)")
    return build_application(load_settings(), **args)


def start_on_ray(settings: Settings, *, address: str, host: str = "127.0.0.1",
                 port: int = 8000, inpainter: str | None = None,
                 planner: str | None = None) -> None:
    """Connect to Ray (`local`: start a cluster here), start Serve's HTTP proxy on HOST:PORT
    and deploy the application; returns once every deployment is up."""
    import ray
    from ray import serve

    from interfaces.api.app import check_bind

    check_bind(host, settings.api_token)
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_application(settings, inpainter=inpainter, planner=planner),
              name=APP_NAME, route_prefix="/")


def serve_on_ray(settings: Settings, *, address: str,
                 on_ready: Callable[[str], None] | None = None, **server: Any) -> None:
    """`start_on_ray`, then serve until Ctrl-C, then take the application down.

    `on_ready` hears the API's URL once every deployment is up.
    """
    try:
        from ray import serve
    except ImportError as exc:
        from tools.errors import ConfigError

        raise ConfigError("--ray needs Ray Serve, which is not installed; run `pip install "
                          "'brushedit-agents[ray]'` (or `pip install 'ray[serve]'`)") from exc
    started = False
    try:
        start_on_ray(settings, address=address, **server)
        started = True
        if on_ready is not None:
            on_ready(f"http://{server.get('host', '127.0.0.1')}:{server.get('port', 8000)}")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if started:
            serve.delete(APP_NAME)
