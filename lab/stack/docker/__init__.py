"""The docker backend: every part of the stack in its own container, on a private network
made for the run, driven by the Docker SDK.

Services reach each other by container name on the run's network; the lab itself (the
sampler, faults, readiness checks) reaches them only through ports published on
127.0.0.1. Locust runs in a container on the same network and writes its per-request log
into the run directory, bind-mounted, so the host reads it live exactly as on the local
backend. Everything the run creates carries the label `org.chaoslab.run-id`, which is how
`lab cleanup` finds the leftovers of a killed run.

One module per job:

- `specs`: what each container runs (pure data; compose/ is rendered from it too)
- `containers`: one container through the SDK (start, ports, address, exit, logs)
- `locust`: the Locust container
- `handle`: `DockerStackHandle`, what faults act on; `adopt` builds one for a compose
  project
- `backend`: `DockerBackend.up`, the stack's start and teardown
- `cleanup`: a run's objects by label (`lab cleanup`)
- `sdk`: `engine()`, the SDK client for the local Docker engine
"""

from lab.stack.docker.backend import DockerBackend
from lab.stack.docker.cleanup import leftover_runs, remove_run_objects, run_objects
from lab.stack.docker.handle import DockerStackHandle
from lab.stack.docker.sdk import engine

__all__ = ["DockerBackend", "DockerStackHandle", "engine", "leftover_runs",
           "remove_run_objects", "run_objects"]
