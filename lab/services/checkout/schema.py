"""Schema and seed data for the checkout database.

Seeding uses `generate_series` inside Postgres, and keys and indexes are built after the
bulk load, so the default ~300k `cart_items` rows take about a second. The size matters:
the incident's query (`cart_items WHERE cart_id = $1`) must be a measurably slow
sequential scan once `CART_ITEMS_INDEX` is dropped (~30-45 ms at 300k rows here) and
well under a millisecond with it.

Shape of the data, which the load generator relies on: carts `1..carts`, cart N belongs to
user N, every cart has `items_per_cart` lines whose SKUs all exist in `inventory` with
ample stock, so a valid checkout of any seeded cart succeeds.
"""

from __future__ import annotations

import time

CART_ITEMS_INDEX = "idx_cart_items_cart_id"
#: The root fix for the pool-exhaustion incident; faults that drop the index restore it so.
CREATE_CART_ITEMS_INDEX = f"CREATE INDEX IF NOT EXISTS {CART_ITEMS_INDEX} ON cart_items (cart_id)"
DROP_CART_ITEMS_INDEX = f"DROP INDEX IF EXISTS {CART_ITEMS_INDEX}"
SKU_COUNT = 1000
INITIAL_STOCK = 1_000_000_000

# Tables first without keys: rows are bulk-loaded, then keys and indexes are built once
# (much faster than maintaining them row by row).
SCHEMA = """
DROP TABLE IF EXISTS orders, cart_items, carts, inventory, users CASCADE;

CREATE TABLE users (
    id          bigint NOT NULL,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE carts (
    id          bigint NOT NULL,
    user_id     bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inventory (
    sku         text NOT NULL,
    stock       integer NOT NULL CHECK (stock >= 0)
);

CREATE TABLE cart_items (
    id                bigint NOT NULL,
    cart_id           bigint NOT NULL,
    sku               text NOT NULL,
    qty               integer NOT NULL CHECK (qty > 0),
    unit_price_cents  integer NOT NULL CHECK (unit_price_cents >= 0)
);

CREATE TABLE orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cart_id      bigint NOT NULL,
    user_id      bigint NOT NULL,
    total_cents  bigint NOT NULL,
    status       text NOT NULL,
    -- the reference the payment gateway charged it under (NULL without a gateway), so
    -- the lab's ledger can join orders to charges and to the capture queue
    order_ref    text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
"""

SEED: tuple[str, ...] = (
    # $1 = carts, $2 = items per cart
    """INSERT INTO users (id, email)
       SELECT u, 'user' || u || '@example.test' FROM generate_series(1, $1::bigint) AS u""",
    """INSERT INTO carts (id, user_id)
       SELECT c, c FROM generate_series(1, $1::bigint) AS c""",
    f"""INSERT INTO inventory (sku, stock)
        SELECT 'SKU-' || lpad(s::text, 5, '0'), {INITIAL_STOCK}
        FROM generate_series(1, {SKU_COUNT}) AS s""",
    # Rows of one cart are adjacent, as they would be when a cart is filled in one session.
    f"""INSERT INTO cart_items (id, cart_id, sku, qty, unit_price_cents)
        SELECT (c - 1) * $2 + i,
               c,
               'SKU-' || lpad(((c * 7 + i * 13) % {SKU_COUNT} + 1)::text, 5, '0'),
               1 + (c + i) % 3,
               100 + (c * 31 + i * 17) % 9900
        FROM generate_series(1, $1::bigint) AS c, generate_series(1, $2::int) AS i""",
    "ALTER TABLE users ADD PRIMARY KEY (id)",
    "ALTER TABLE carts ADD PRIMARY KEY (id)",
    "ALTER TABLE inventory ADD PRIMARY KEY (sku)",
    "ALTER TABLE cart_items ADD PRIMARY KEY (id)",
    "ALTER TABLE carts ADD FOREIGN KEY (user_id) REFERENCES users (id)",
    # No index comes with a foreign key in Postgres: CART_ITEMS_INDEX is a separate object,
    # which is exactly how it could be dropped without anyone noticing.
    "ALTER TABLE cart_items ADD FOREIGN KEY (cart_id) REFERENCES carts (id)",
    "ALTER TABLE cart_items ADD FOREIGN KEY (sku) REFERENCES inventory (sku)",
    CREATE_CART_ITEMS_INDEX,
)


# The payment fallback's capture queue: orders accepted as payment pending, with the
# reference a capture job (or reconciliation) charges them under.
PAYMENTS_SCHEMA = """
DROP TABLE IF EXISTS payment_captures;
CREATE TABLE payment_captures (
    order_id      bigint PRIMARY KEY REFERENCES orders (id),
    order_ref     text NOT NULL,
    amount_cents  bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
"""


async def migrate(dsn: str, carts: int, items_per_cart: int) -> None:
    """Drop and recreate the schema, then seed `carts * items_per_cart` cart lines."""
    if carts < 1 or items_per_cart < 1:
        raise ValueError("carts and items_per_cart must be >= 1")
    import asyncpg  # here: the fault registry imports this module's names for validation

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(SCHEMA)
            await conn.execute(PAYMENTS_SCHEMA)
            for statement in SEED:
                # Postgres rejects unused parameters, so pass only those referenced.
                params = [v for n, v in ((1, carts), (2, items_per_cart)) if f"${n}" in statement]
                await conn.execute(statement, *params)
        # The seed's row counts reach the shared statistics when this backend next flushes
        # them, at most once a second: after a seed shorter than that, only after the VACUUM
        # below had zeroed them, leaving every row "inserted since vacuum" (so autovacuum
        # would vacuum during the run). Flush them first (Postgres 15+; older servers
        # count through the stats collector).
        if conn.get_server_version() >= (15,):
            await conn.execute("SELECT pg_stat_force_next_flush()")
        # Outside the transaction (VACUUM cannot run in one): leave autovacuum nothing to
        # do during the run. Otherwise the insert-triggered vacuum of the fresh rows starts
        # about a minute after seeding, in the middle of the load, and the first reads of
        # each page write hint bits: bursts of I/O and CPU that are not the incident.
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


async def migrate_timed(dsn: str, carts: int, items_per_cart: int) -> float:
    """`migrate` returning the seconds it took (for the CLI's one timing line)."""
    started = time.perf_counter()
    await migrate(dsn, carts, items_per_cart)
    return time.perf_counter() - started
