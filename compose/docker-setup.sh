#!/usr/bin/env bash
# Prepare a machine for the docker backend, offline-friendly.
#   engine      a Docker engine answering: installs Debian's docker.io and starts dockerd
#               when none runs (root only; CI does this)
#   base-image  debian:bookworm-slim without a registry: debootstrap + docker import
set -euo pipefail

wait_for_engine() {
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  echo "dockerd did not answer within 60 s; see /var/log/chaoslab-dockerd.log" >&2
  return 1
}

case "${1:-}" in
  engine)
    if ! command -v docker-compose >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get update -qq   # Compose v1.29, to check compose/ files parse (see the tests)
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    fi
    if docker info >/dev/null 2>&1; then echo "engine: already running"; exit 0; fi
    if [ "$(id -u)" != 0 ]; then echo "engine: root is needed to install and start dockerd" >&2; exit 1; fi
    if ! command -v dockerd >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose >/dev/null
    fi
    nohup dockerd >/var/log/chaoslab-dockerd.log 2>&1 &
    wait_for_engine
    echo "engine: dockerd $(docker version --format '{{.Server.Version}}') started"
    ;;
  base-image)
    if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
      echo "base-image: debian:bookworm-slim present"; exit 0
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    rootfs=$(mktemp -d /tmp/chaoslab-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
    echo "base-image: debian:bookworm-slim imported"
    ;;
  *)
    echo "usage: $0 engine|base-image" >&2; exit 2 ;;
esac
