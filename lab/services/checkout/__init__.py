"""The checkout service: the system under test for the pool-exhaustion incident.

An aiohttp + asyncpg service written like production code; every mitigation is a config
switch (see `config.py`). Kept import-light so `python -m lab.services.checkout` can
reject a bad configuration before aiohttp or asyncpg are even imported.
"""
