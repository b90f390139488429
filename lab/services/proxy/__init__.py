"""A fault proxy between the checkout and the payment gateway, controlled at run time.

TCP-level toxics named as Toxiproxy names them (`latency`, `timeout`, `reset_peer`,
`down`, `bandwidth`), plus what Toxiproxy cannot do: `http_error` answers a share of
requests with a chosen status. Every random choice comes from `toxics.FaultChooser`,
seeded from the scenario, so a run can be repeated and tests can assert exact counts.
"""
