"""A health-checked reverse proxy in front of the checkout instances.

Load always goes through it. It checks each backend's health path every `inter` and
takes a backend out of rotation after `fall` failed checks in a row, back in after `rise`
good ones (HAProxy's semantics, so the docker backend's HAProxy behaves the same). When no
backend is in rotation it answers 503 + `Retry-After` itself — never a 500.
"""
