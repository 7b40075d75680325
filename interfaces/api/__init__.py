"""The HTTP API (`brushedit serve`): `create_app` builds it, `serve` runs it with uvicorn.

`app` puts the parts together. Pydantic models and failure mapping (`models`, `errors`,
`options`, `jobs`, `job_store`) import no FastAPI; the route modules (`docs`, `sessions`,
`edits`, `artifacts`, with `auth`, `handlers`, `streaming`, `params`) do, and are imported only
when an app is built. Each route module registers its routes on the app
(`add_*_routes(app, state, ...)`) over the app's one `ApiState` (also on
`app.state.brushedit`). Not `APIRouter`s: this FastAPI keeps an included router as one entry of
`app.routes`, and the 405 answer reads each route's methods there.
"""

from interfaces.api.app import LOOPBACK_HOSTS, check_bind, clean_token, create_app, serve

__all__ = ["LOOPBACK_HOSTS", "check_bind", "clean_token", "create_app", "serve"]
