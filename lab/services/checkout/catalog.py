"""The catalog's price list: an expensive aggregate served from the in-process cache.

`GET /api/catalog/prices` answers the 50 best-selling SKUs with their price statistics,
aggregated over every cart line (`percentile_cont` needs a sort per SKU: a few hundred
milliseconds on the default seed, and it grows with the data). Nobody would run that per
request, so the rendered body is cached for `CATALOG_CACHE_TTL_MS`; what happens when the
key expires under load is the cache-stampede incident (see `cache.py`).

`/admin/cache` lets the lab act on the cache the way production events do: expire the
hot key at a given moment (as a deploy that wrote every key with the same TTL would),
and read its state for evidence. Bound to 127.0.0.1 like the rest of the service.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .cache import RESULTS, RecomputingCache
from .db import Database
from .handlers import DB
from .problems import problem_response

PRICES_KEY = "catalog:prices"
TOP_SKUS = 50

PRICES_QUERY = f"""
SELECT sku,
       count(*)                                                         AS cart_lines,
       sum(qty)                                                         AS units,
       round(avg(unit_price_cents))::int                                AS avg_cents,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price_cents)    AS median_cents,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY unit_price_cents)   AS p95_cents
FROM cart_items
GROUP BY sku
ORDER BY units DESC, sku
LIMIT {TOP_SKUS}
"""

CatalogCache = RecomputingCache[bytes]
CATALOG_CACHE: web.AppKey[CatalogCache] = web.AppKey("catalog_cache")


async def compute_prices(db: Database) -> bytes:
    """Run the aggregate on a pooled connection and render the response body once."""
    async with db.connection() as conn:
        rows = await conn.fetch(PRICES_QUERY)
    skus = [
        {
            "sku": r["sku"],
            "cart_lines": r["cart_lines"],
            "units": r["units"],
            "avg_cents": r["avg_cents"],
            "median_cents": round(r["median_cents"]),
            "p95_cents": round(r["p95_cents"]),
        }
        for r in rows
    ]
    return json.dumps({"currency": "EUR", "skus": skus}).encode()


def _cache(request: web.Request) -> CatalogCache:
    return request.app[CATALOG_CACHE]


async def catalog_prices(request: web.Request) -> web.Response:
    """The cached price list; a miss recomputes it as the configured strategy decides."""
    db = request.app[DB]
    body = await _cache(request).get(PRICES_KEY, lambda: compute_prices(db))
    return web.Response(body=body, content_type="application/json")


def _entry_state(cache: CatalogCache, key: str) -> dict[str, Any] | None:
    entry = cache.entry(key)
    if entry is None:
        return None
    now = cache.now()
    return {
        "key": key,
        "age_s": round(now - entry.computed_at, 3),
        "expires_in_s": round(entry.expires_at - now, 3),
        "last_recompute_s": round(entry.delta_s, 3),
    }


def _figures(cache: CatalogCache) -> dict[str, Any]:
    f = cache.figures
    return {
        "strategy": cache.strategy,
        "recomputes": f.recomputes,
        "recompute_failures": f.recompute_failures,
        "recomputes_in_progress": f.in_progress,
        "peak_recomputes_in_progress": f.peak_in_progress,
        "served": {result: f.served[result] for result in RESULTS},
    }


async def cache_state(request: web.Request) -> web.Response:
    """`GET /admin/cache`: the hot key's state and the recompute figures."""
    cache = _cache(request)
    return web.json_response({**_figures(cache), "entry": _entry_state(cache, PRICES_KEY)})


async def cache_expire(request: web.Request) -> web.Response:
    """`POST /admin/cache/expire {"key": ..., "in_ms": 0}`: the key expires then."""
    try:
        doc = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        doc = None
    key = doc.get("key", PRICES_KEY) if isinstance(doc, dict) else None
    in_ms = doc.get("in_ms", 0) if isinstance(doc, dict) else None
    if not isinstance(key, str) or isinstance(in_ms, bool) or not isinstance(in_ms, int):
        return problem_response(
            400, detail='expected a JSON object {"key": str, "in_ms": int >= 0}'
        )
    if in_ms < 0:
        return problem_response(400, detail="in_ms must be >= 0")
    cache = _cache(request)
    if cache.expire(key, in_ms / 1000) is None:
        return problem_response(404, detail=f"{key!r} is not cached")
    return web.json_response({**_figures(cache), "entry": _entry_state(cache, key)})
