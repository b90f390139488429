"""orders: a small order-taking service, written the way a product team writes one.

It is an example of a service chaoslab did not write for itself: it imports nothing from
the lab, uses Flask on werkzeug's threaded server and psycopg 3 with psycopg_pool, and
calls a shipping-quote dependency over HTTP with the standard library.

Run it with ``python orders_service.py``. It binds 127.0.0.1 unless ORDERS_HOST says
otherwise, and prints ``orders listening on <host>:<port>`` to stdout once it serves.

Environment variables
---------------------
ORDERS_PORT              required. The port to listen on.
ORDERS_HOST              default 127.0.0.1. The address to listen on (0.0.0.0 in a
                         container, so other containers of its network reach it).
DATABASE_URL             required. A libpq URL, e.g. postgresql://user@127.0.0.1:5432/db.
SHIPPING_URL             required. Base URL of the shipping-quote dependency,
                         e.g. http://127.0.0.1:9000 (the service calls GET /quote on it).
SHIPPING_API_KEY         Sent to the dependency as header X-Api-Key. The service starts
                         without it (liveness stays green), but it is read with
                         os.environ["SHIPPING_API_KEY"] in the order handler, so every
                         POST /orders then fails with an unhandled KeyError: HTTP 500.
REQUIRE_CONFIG_AT_START  default false. When true, start-up checks that SHIPPING_API_KEY
                         is set and non-empty; if not it prints
                         ``STARTUP_FAILURE missing SHIPPING_API_KEY`` to stderr and exits
                         with status 78 (EX_CONFIG) before it binds the port.
POOL_SIZE                default 5. The connection pool's size (min_size = max_size); the
                         pool is opened at start-up and filled before the port is bound.
POOL_TIMEOUT_S           default 30. How long a request waits for a pooled connection. A
                         psycopg_pool.PoolTimeout is unhandled (500) unless ERRORS_AS_503.
STATEMENT_TIMEOUT_MS     default 0 (none). The connections' statement_timeout. A cancelled
                         statement (psycopg.errors.QueryCanceled) is unhandled (500) unless
                         ERRORS_AS_503.
SHIPPING_TIMEOUT_S       default 30. Timeout of the HTTP call to the dependency.
SHIPPING_FALLBACK        default off. When ``estimate``, a failed dependency call (HTTP error
                         status, timeout, connection error, bad JSON) is answered with a
                         flat estimate and the order still succeeds:
                         "shipping": {"cents": 599, "carrier": "estimate", "estimated": true}.
ERRORS_AS_503            default false. When true, a dependency failure (without fallback),
                         a PoolTimeout or a statement timeout is answered 503 with header
                         Retry-After: 1 and JSON {"error": "<kind>"}, kind being
                         dependency_unavailable, pool_timeout or statement_timeout. When
                         false they propagate, Flask answers 500 and the exception is logged
                         with its type name and traceback to stderr.
ORDERS_INSTANCE          default "orders". Sent on every response as header X-Instance.

A configuration value that does not parse (a port that is not a number, a required
variable that is missing) also prints one ``STARTUP_FAILURE ...`` line and exits 78.

Endpoints
---------
GET  /healthz   200 {"status": "ok"}, always (liveness; does not touch the database).
GET  /readyz    200 {"status": "ready"} if SELECT 1 works within 1 s, else 503
                {"status": "unavailable"} with Retry-After: 1.
POST /orders    {"customer_id": int, "sku": str, "qty": int, "idempotency_key": str}
                -> 201 {"order_id", "status": "confirmed", "total_cents", "shipping"};
                400 on bad input, 404 for an unknown customer or sku. A repeated
                idempotency_key answers 201 with the order already stored.
GET  /metrics   Prometheus text: orders_requests_total{outcome}, orders_pool_size,
                orders_pool_in_use, orders_pool_waiting, orders_dependency_errors_total.

SIGTERM (or SIGINT) stops the server, closes the pool and exits 0.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import psycopg
import psycopg.errors
import psycopg_pool
from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from werkzeug.serving import make_server

HOST = os.environ.get("ORDERS_HOST", "").strip() or "127.0.0.1"
EX_CONFIG = 78

CUSTOMER_QUERY = "SELECT zip FROM customers WHERE id = %s"
PRODUCT_QUERY = "SELECT price_cents, weight_g FROM products WHERE sku = %s"
# Served by idx_orders_customer_id. Without that index it is a sequential scan of the
# whole orders table, on every order, while the request holds a pooled connection.
LOYALTY_QUERY = "SELECT count(*) FROM orders WHERE customer_id = %s"
INSERT_ORDER = (
    "INSERT INTO orders (customer_id, sku, qty, total_cents, idempotency_key)"
    " VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
EXISTING_ORDER = "SELECT id, total_cents FROM orders WHERE idempotency_key = %s"

LOYALTY_MIN_ORDERS = 3  # previous orders needed for the discount
LOYALTY_PERCENT_OFF = 5
ESTIMATE = {"cents": 599, "carrier": "estimate", "estimated": True}
MAX_QTY = 1000
MAX_TEXT = 200

OUTCOMES = (
    "created",
    "fallback",
    "client_error",
    "dependency_error",
    "pool_timeout",
    "statement_timeout",
    "unhandled",
)

log = logging.getLogger("orders")

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series


class ConfigError(Exception):
    """A configuration problem; its message follows STARTUP_FAILURE on stderr."""


@dataclass(frozen=True)
class Config:
    port: int
    database_url: str
    shipping_url: str
    require_config_at_start: bool
    pool_size: int
    pool_timeout_s: float
    statement_timeout_ms: int
    shipping_timeout_s: float
    shipping_fallback: str
    errors_as_503: bool
    instance: str


def _required(env: dict[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"missing {name}")
    return value


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"invalid {name}={raw!r} (expected true or false)")


def _number(env: dict[str, str], name: str, default: float, kind: type, minimum: float) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"invalid {name}={raw!r} (expected a number)") from None
    if value < minimum:
        raise ConfigError(f"invalid {name}={raw!r} (must be >= {minimum})")
    return value


def load_config(env: dict[str, str]) -> Config:
    _required(env, "ORDERS_PORT")
    port = _number(env, "ORDERS_PORT", 0, int, 1)
    if port > 65535:
        raise ConfigError(f"invalid ORDERS_PORT={port}")
    fallback = env.get("SHIPPING_FALLBACK", "").strip().lower() or "off"
    if fallback not in ("off", "estimate"):
        raise ConfigError(f"invalid SHIPPING_FALLBACK={fallback!r} (expected off or estimate)")
    return Config(
        port=port,
        database_url=_required(env, "DATABASE_URL"),
        shipping_url=_required(env, "SHIPPING_URL").rstrip("/"),
        require_config_at_start=_bool(env, "REQUIRE_CONFIG_AT_START", False),
        pool_size=_number(env, "POOL_SIZE", 5, int, 1),
        pool_timeout_s=_number(env, "POOL_TIMEOUT_S", 30, float, 0.001),
        statement_timeout_ms=_number(env, "STATEMENT_TIMEOUT_MS", 0, int, 0),
        shipping_timeout_s=_number(env, "SHIPPING_TIMEOUT_S", 30, float, 0.001),
        shipping_fallback=fallback,
        errors_as_503=_bool(env, "ERRORS_AS_503", False),
        instance=env.get("ORDERS_INSTANCE", "").strip() or "orders",
    )


# --- the dependency ----------------------------------------------------------------------

class BadQuote(ValueError):
    """The dependency answered 200 with a body that is not a quote."""


# Everything a failed call to the dependency raises: HTTPError (an error status) and
# URLError (refused, unreachable) are OSErrors, so is TimeoutError; a dropped connection is
# an OSError or an http.client.HTTPException; bad JSON or a bad shape is a ValueError.
DEPENDENCY_ERRORS = (OSError, http.client.HTTPException, ValueError)

# No proxies: the dependency is called directly whatever http_proxy says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_quote(base_url: str, api_key: str, zip_code: str, weight_g: int,
                timeout_s: float) -> dict[str, Any]:
    query = urllib.parse.urlencode({"zip": zip_code, "weight_g": weight_g})
    req = urllib.request.Request(
        f"{base_url}/quote?{query}",
        headers={"X-Api-Key": api_key, "Accept": "application/json"},
    )
    with _opener.open(req, timeout=timeout_s) as resp:
        body = json.loads(resp.read().decode("utf-8"))
    if not isinstance(body, dict):
        raise BadQuote(f"quote is not an object: {body!r:.100}")
    cents, carrier = body.get("cents"), body.get("carrier")
    if type(cents) is not int or cents < 0 or not isinstance(carrier, str):
        raise BadQuote(f"quote lacks cents/carrier: {body!r:.100}")
    return {"cents": cents, "carrier": carrier}


# --- metrics -----------------------------------------------------------------------------

class PoolCollector:
    """orders_pool_* gauges, read from the pool's statistics at scrape time."""

    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._pool.get_stats()
        size = stats.get("pool_size", 0)
        in_use = size - stats.get("pool_available", 0)
        waiting = stats.get("requests_waiting", 0)
        yield GaugeMetricFamily("orders_pool_size", "Connections the pool holds.", value=size)
        yield GaugeMetricFamily("orders_pool_in_use", "Connections checked out.", value=in_use)
        yield GaugeMetricFamily(
            "orders_pool_waiting", "Requests waiting for a connection.", value=waiting
        )


class Metrics:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "orders_requests", "POST /orders by outcome.", ["outcome"], registry=self.registry
        )
        for outcome in OUTCOMES:
            self.requests.labels(outcome)
        self.dependency_errors = Counter(
            "orders_dependency_errors", "Failed calls to the shipping dependency.",
            registry=self.registry,
        )
        self.registry.register(PoolCollector(pool))

    def outcome(self, name: str) -> None:
        self.requests.labels(name).inc()


# --- the application ---------------------------------------------------------------------

class OrdersFlask(Flask):
    def log_exception(self, exc_info: Any) -> None:
        # Flask's own line is "Exception on /orders [POST]"; put the type name in it.
        exc = exc_info[1]
        self.logger.error(
            "unhandled %s on %s %s: %s", type(exc).__name__, request.method, request.path, exc,
            exc_info=exc_info,
        )


def _unavailable(kind: str) -> tuple[Response, int, dict[str, str]]:
    return jsonify(error=kind), 503, {"Retry-After": "1"}


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    """The one row a statement that always returns a row returned."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("expected a row, got none")
    return row


def _validate(body: Any) -> tuple[int, str, int, str] | str:
    """The order's fields, or a message saying what is wrong with the body."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    customer_id, sku = body.get("customer_id"), body.get("sku")
    qty, key = body.get("qty"), body.get("idempotency_key")
    if type(customer_id) is not int or not 1 <= customer_id <= 2**31 - 1:
        return "customer_id must be a positive integer"
    if not isinstance(sku, str) or not 0 < len(sku) <= MAX_TEXT:
        return "sku must be a non-empty string"
    if type(qty) is not int or not 1 <= qty <= MAX_QTY:
        return f"qty must be an integer from 1 to {MAX_QTY}"
    if not isinstance(key, str) or not 0 < len(key) <= MAX_TEXT:
        return "idempotency_key must be a non-empty string"
    return customer_id, sku, qty, key


def create_app(cfg: Config, pool: psycopg_pool.ConnectionPool, metrics: Metrics) -> Flask:
    app = OrdersFlask("orders")

    @app.after_request
    def _instance_header(resp: Response) -> Response:
        resp.headers["X-Instance"] = cfg.instance
        return resp

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        deadline = time.monotonic() + 1.0
        try:
            with pool.connection(timeout=1.0) as conn:
                left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(left_ms),))
                conn.execute("SELECT 1").fetchone()
        except (psycopg_pool.PoolTimeout, psycopg.Error) as exc:
            log.warning("not ready: %s: %s", type(exc).__name__, exc)
            return jsonify(status="unavailable"), 503, {"Retry-After": "1"}
        return jsonify(status="ready")

    @app.get("/metrics")
    def metrics_endpoint() -> ResponseReturnValue:
        return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    def count(outcome: str) -> None:
        g.outcome = outcome
        metrics.outcome(outcome)

    def client_error(status: int, message: str) -> ResponseReturnValue:
        count("client_error")
        return jsonify(error=message), status

    @app.post("/orders")
    def create_order() -> ResponseReturnValue:
        try:
            return place_order()
        except psycopg_pool.PoolTimeout:
            count("pool_timeout")
            if not cfg.errors_as_503:
                raise
            log.warning("answering 503: %s", traceback.format_exc(limit=0).strip())
            return _unavailable("pool_timeout")
        except psycopg.errors.QueryCanceled:
            count("statement_timeout")
            if not cfg.errors_as_503:
                raise
            log.warning("answering 503: %s", traceback.format_exc(limit=0).strip())
            return _unavailable("statement_timeout")
        except Exception:
            if "outcome" not in g:  # not counted on its way out
                count("unhandled")
            raise

    def place_order() -> ResponseReturnValue:
        fields = _validate(request.get_json(silent=True))
        if isinstance(fields, str):
            return client_error(400, fields)
        customer_id, sku, qty, idempotency_key = fields

        with pool.connection() as conn:
            row = conn.execute(CUSTOMER_QUERY, (customer_id,)).fetchone()
            if row is None:
                return client_error(404, f"no customer {customer_id}")
            zip_code = row[0]
            row = conn.execute(PRODUCT_QUERY, (sku,)).fetchone()
            if row is None:
                return client_error(404, f"no product {sku}")
            price_cents, weight_g = row
            previous_orders = _one(conn.execute(LOYALTY_QUERY, (customer_id,)))[0]
        # The connection is back in the pool: the dependency call holds none.

        items_cents = price_cents * qty
        if previous_orders >= LOYALTY_MIN_ORDERS:
            items_cents = items_cents * (100 - LOYALTY_PERCENT_OFF) // 100

        api_key = os.environ["SHIPPING_API_KEY"]
        outcome = "created"
        try:
            shipping: dict[str, Any] = fetch_quote(
                cfg.shipping_url, api_key, zip_code, weight_g * qty, cfg.shipping_timeout_s
            )
        except DEPENDENCY_ERRORS as exc:
            metrics.dependency_errors.inc()
            if cfg.shipping_fallback == "estimate":
                log.warning("shipping quote failed (%s: %s); using the estimate",
                            type(exc).__name__, exc)
                shipping, outcome = dict(ESTIMATE), "fallback"
            elif cfg.errors_as_503:
                log.warning("shipping quote failed: %s: %s", type(exc).__name__, exc)
                count("dependency_error")
                return _unavailable("dependency_unavailable")
            else:
                count("dependency_error")
                raise  # unhandled: Flask logs it with its traceback and answers 500

        total_cents = items_cents + shipping["cents"]
        with pool.connection() as conn:
            row = conn.execute(
                INSERT_ORDER, (customer_id, sku, qty, total_cents, idempotency_key)
            ).fetchone()
            if row is not None:
                order_id = row[0]
            else:  # the key was used before: answer with the order it made
                order_id, total_cents = _one(conn.execute(EXISTING_ORDER, (idempotency_key,)))

        count(outcome)
        return jsonify(
            order_id=order_id, status="confirmed", total_cents=total_cents, shipping=shipping
        ), 201

    return app


# --- start-up and shutdown ---------------------------------------------------------------

def _startup_failure(message: str) -> NoReturn:
    print(f"STARTUP_FAILURE {message}", file=sys.stderr, flush=True)
    sys.exit(EX_CONFIG)


def open_pool(cfg: Config) -> psycopg_pool.ConnectionPool:
    configure = None
    if cfg.statement_timeout_ms > 0:
        timeout = str(cfg.statement_timeout_ms)

        def configure(conn: psycopg.Connection) -> None:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (timeout,))
            conn.commit()

    pool = psycopg_pool.ConnectionPool(
        cfg.database_url,
        min_size=cfg.pool_size,
        max_size=cfg.pool_size,
        timeout=cfg.pool_timeout_s,
        configure=configure,
        name="orders",
        open=False,
    )
    try:
        pool.open(wait=True, timeout=30.0)
    except BaseException:
        pool.close(timeout=1.0)
        raise
    return pool


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request

    try:
        cfg = load_config(dict(os.environ))
    except ConfigError as exc:
        _startup_failure(str(exc))
    if cfg.require_config_at_start and not os.environ.get("SHIPPING_API_KEY", "").strip():
        _startup_failure("missing SHIPPING_API_KEY")

    try:
        pool = open_pool(cfg)
    except psycopg_pool.PoolTimeout as exc:
        print(f"orders: cannot fill the connection pool: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        app = create_app(cfg, pool, Metrics(pool))
        server = make_server(HOST, cfg.port, app, threaded=True)
    except BaseException:
        pool.close(timeout=1.0)
        raise

    stopping: list[int] = []  # the handler only appends: no lock taken in a signal handler

    def _on_signal(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="serve", daemon=True
    )
    serving.start()
    print(f"orders listening on {HOST}:{server.server_port}", flush=True)
    while not stopping:
        if not serving.is_alive():  # serve_forever died: nothing more to serve
            pool.close(timeout=1.0)
            return 1
        time.sleep(0.1)

    server.shutdown()
    server.server_close()
    pool.close(timeout=1.0)
    print("orders stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
