#!/bin/sh
# A throwaway lab database: initdb on start, trust auth on the container network,
# durability off. Extra arguments are passed to postgres (e.g. -c fsync=off).
set -e
PGBIN=/usr/lib/postgresql/15/bin
DATA=/var/lib/chaoslab/data
# A data set the lab built once (lab.stack.docker.dataset), mounted read-only here: each
# run's server starts on its own copy of it instead of a fresh initdb and seed.
CACHE=/var/lib/chaoslab-cache
mkdir -p /var/lib/chaoslab /run/postgresql
chown postgres /var/lib/chaoslab /run/postgresql
if [ -d "$CACHE" ]; then
  if [ ! -f "$CACHE/data/PG_VERSION" ]; then
    echo "pg-entrypoint: $CACHE is mounted but holds no data directory" >&2
    exit 2
  fi
  cp -a "$CACHE/data" "$DATA"
else
  runuser -u postgres -- "$PGBIN/initdb" -D "$DATA" --no-sync -A trust -U lab -E UTF8 --locale=C >/dev/null
  echo "host all all 0.0.0.0/0 trust" >> "$DATA/pg_hba.conf"
  # The lab's database exists before the server listens, so `docker compose up` needs no lab.
  echo "CREATE DATABASE shop" | runuser -u postgres -- "$PGBIN/postgres" --single -D "$DATA" postgres >/dev/null
fi
exec runuser -u postgres -- "$PGBIN/postgres" -D "$DATA" -h '*' -p 5432 "$@"
