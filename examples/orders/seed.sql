-- Deterministic seed data for the orders service (no random(): the same rows every load).
--   20 000 customers, ids 1..20000, 5-digit zips;
--      500 products, SKU-0001..SKU-0500;
--  800 000 orders, idempotency keys seed-1..seed-800000, 50 each for customers 1..16000
--          (enough that the loyalty query's scan, once its index is gone, needs fewer
--          arrivals to outrun the pool than the healthy service can take on 2 cores).
--          Customers 16001..20000 have no orders yet (no loyalty discount).
-- Load it once, after schema.sql, into its empty tables:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f schema.sql -f seed.sql

BEGIN;

INSERT INTO customers (id, zip)
SELECT n, lpad(((n * 7919) % 100000)::text, 5, '0')
FROM generate_series(1, 20000) AS n;

INSERT INTO products (sku, price_cents, weight_g)
SELECT 'SKU-' || lpad(n::text, 4, '0'),
       199 + (n * 37) % 4800,
       50 + (n * 53) % 4950
FROM generate_series(1, 500) AS n;

-- Checking two foreign keys and maintaining two secondary indexes row by row makes the
-- bulk insert about five times slower than building them once afterwards. So they are
-- dropped here and put back below, with schema.sql's names and definitions, before the
-- transaction commits.
ALTER TABLE orders
    DROP CONSTRAINT orders_customer_id_fkey,
    DROP CONSTRAINT orders_sku_fkey,
    DROP CONSTRAINT orders_idempotency_key_key;
DROP INDEX idx_orders_customer_id;

-- 7919 is prime, so n * 7919 mod 16000 visits every residue once per 16000 orders:
-- each of customers 1..16000 gets exactly 50 orders, interleaved over the table.
INSERT INTO orders (customer_id, sku, qty, total_cents, idempotency_key, created_at)
SELECT 1 + (n::bigint * 7919) % 16000,
       p.sku,
       1 + n % 3,
       p.price_cents * (1 + n % 3) + 300 + p.weight_g * (1 + n % 3) / 10,
       'seed-' || n,
       timestamptz '2024-01-01 00:00:00+00' + n * interval '1 minute'
FROM generate_series(1, 800000) AS n
JOIN products AS p ON p.sku = 'SKU-' || lpad((1 + (n * 31) % 500)::text, 4, '0');

ALTER TABLE orders
    ADD CONSTRAINT orders_idempotency_key_key UNIQUE (idempotency_key),
    ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers (id),
    ADD CONSTRAINT orders_sku_fkey FOREIGN KEY (sku) REFERENCES products (sku);
CREATE INDEX idx_orders_customer_id ON orders (customer_id);

COMMIT;

ANALYZE customers;
ANALYZE products;
ANALYZE orders;
