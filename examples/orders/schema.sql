-- The orders service's schema. Load it into an empty database, then seed.sql.
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f schema.sql -f seed.sql

CREATE TABLE customers (
    id  integer PRIMARY KEY,
    zip text    NOT NULL
);

CREATE TABLE products (
    sku         text    PRIMARY KEY,
    price_cents integer NOT NULL,
    weight_g    integer NOT NULL
);

CREATE TABLE orders (
    id              bigserial   PRIMARY KEY,
    customer_id     integer     NOT NULL REFERENCES customers (id),
    sku             text        NOT NULL REFERENCES products (sku),
    qty             integer     NOT NULL,
    total_cents     integer     NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The loyalty lookup (SELECT count(*) FROM orders WHERE customer_id = $1) runs on every
-- order and uses this index. Dropped, it becomes a sequential scan of the orders table.
CREATE INDEX idx_orders_customer_id ON orders (customer_id);
