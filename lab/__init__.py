"""chaoslab: a scenario file becomes a stack, a fault, a load, records, a verdict and a
report. The packages are that pipeline, read top to bottom:

- `lab.scenario`: the file's typed models, its loader and JSON Schema, the expectation
  grammar, units, the physics spec and the one rule of an honest answer.
- `lab.stack`: the system under test brought up and torn down (local processes or
  Docker), Postgres and its data sets, images, the router, each service's environment.
- `lab.faults`: what breaks it, and how each fault is reverted.
- `lab.load`: Locust driving the open-model schedule, and the calibration that sizes it.
- `lab.records`: what the run observed (samples, the ledger) and the collectors.
- `lab.verdict`: windows, the judging of expectations, validity and stability.
- `lab.report`: the table, HTML, charts and alerts made from a results file.
- `lab.run`: one variant's experiment, the loop over variants, events, the pytest
  plugin, conditions and the benchmarks.
- `lab.live`: a stack kept under load for rehearsals and drills.
- `lab.cli`: the only place that prints and exits; `lab.system`: small OS helpers.

The import contract in pyproject.toml (`make lint`) keeps imports running downwards.
"""
