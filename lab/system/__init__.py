"""Small system helpers: child processes, one-shot commands, ports, waits, threads and
run directories."""
