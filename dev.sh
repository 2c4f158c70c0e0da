#!/usr/bin/env bash
# Capture's set-up and run script. Two commands do everything on a fresh machine:
#   ./dev.sh demo    virtualenv, install, migrate SQLite, load definitions, demo study, serve :8000
#   ./dev.sh test    virtualenv, install, Chromium for the browser tests, the test suite on SQLite
#                    (with --postgres: also on a throw-away PostgreSQL 15 cluster on 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")"
VENV=${CAPTURE_VENV:-.venv}
PY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

ensure_venv() {
  if [ ! -x "$PY" ]; then
    say "Creating the virtualenv in $VENV"
    python3 -m venv "$VENV"
  fi
  # Reinstall only when the lock or pyproject.toml changed since the last install. The lock
  # (requirements/lock.txt: runtime and dev dependencies, every version pinned) is what gets
  # installed; Capture itself goes in editable, without resolving anything again.
  local stamp="$VENV/.capture-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements/lock.txt -nt "$stamp" ]; then
    say "Installing Capture and its locked dependencies"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -r requirements/lock.txt
    "$PY" -m pip install --quiet --no-deps -e .
    touch "$stamp"
  fi
}

apt_install() {
  # Debian packages the tests need; installed only when missing and when we may.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    echo "Missing Debian packages: ${missing[*]} (install them as root)." >&2
    return 1
  fi
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  say "Installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_postgres() {
  # A throw-away PostgreSQL cluster on 127.0.0.1, owned by an unprivileged user, removed on exit.
  apt_install postgresql
  local bindir; bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PGTMP=$(mktemp -d /tmp/capture-pg.XXXXXX)
  local port=${CAPTURE_PG_PORT:-54329}
  local runas=()
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$PGTMP"; runas=(runuser -u postgres --); fi
  "${runas[@]}" "$bindir/initdb" -D "$PGTMP/data" -U capture --auth=trust -E UTF8 >/dev/null
  "${runas[@]}" "$bindir/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/log" -w \
    -o "-h 127.0.0.1 -p $port -k $PGTMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
  trap 'stop_postgres' EXIT
  PG_STOP=("${runas[@]}" "$bindir/pg_ctl" -D "$PGTMP/data" -m immediate stop)
  export DATABASE_URL="postgres://capture@127.0.0.1:$port/capture"
  "${runas[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U capture capture
  say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') running on 127.0.0.1:$port"
}

stop_postgres() {
  [ -n "${PGTMP:-}" ] || return 0
  "${PG_STOP[@]}" >/dev/null 2>&1 || true
  rm -rf "$PGTMP"
}

cmd_demo() {
  ensure_venv
  mkdir -p var
  say "Migrating the embedded SQLite database (var/capture.sqlite3)"
  "$PY" manage.py migrate --noinput -v 0
  say "Loading crf_definitions/"
  "$PY" manage.py load_definitions
  say "Creating the demo study"
  "$PY" manage.py seed_demo
  say "Serving on http://127.0.0.1:8000 (Ctrl-C stops)"
  exec "$PY" manage.py runserver 127.0.0.1:8000
}

cmd_test() {
  local postgres=0 args=()
  for arg in "$@"; do
    if [ "$arg" = "--postgres" ]; then postgres=1; else args+=("$arg"); fi
  done
  ensure_venv
  apt_install chromium orthanc orthanc-dicomweb || echo "Chromium or Orthanc missing: browser and DICOMweb tests are skipped (with CI=true they fail)." >&2
  say "Tests on SQLite"
  env -u DATABASE_URL "$PY" -m pytest "${args[@]}"
  if [ "$postgres" -eq 1 ]; then
    start_postgres
    say "Tests on PostgreSQL"
    "$PY" -m pytest "${args[@]}"
  fi
}

case "${1:-}" in
  demo) shift; cmd_demo "$@" ;;
  test) shift; cmd_test "$@" ;;
  *) echo "usage: ./dev.sh demo | ./dev.sh test [--postgres] [pytest args]" >&2; exit 2 ;;
esac
