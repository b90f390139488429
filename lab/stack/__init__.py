"""The stack under test: backends (local processes, Docker), Postgres, data sets,
images, the router and the wiring of every service's environment."""
