"""The load: Locust on the open-model arrival schedule (one process or master and
workers), per-request records, and the calibration that sizes the rate."""
