# shellcheck shell=bash
# Source me (". .ci/postgres.sh"): start a throw-away PostgreSQL for the tests unless one is configured.
#
# Contract:
#   * ARCHIVER_TEST_DATABASE_URL already set      -> nothing is started; pg_stop is a no-op.
#   * no initdb/pg_ctl on PATH (or /usr/local/bin,
#     /usr/lib/postgresql/*/bin)                  -> a note on stderr; nothing exported; PG tests skip.
#   * otherwise: initdb a trust-auth cluster in a fresh temp dir (owned by the `postgres` user when run as
#     root), start it with `pg_ctl -w` on a free 127.0.0.1 port, and export
#         ARCHIVER_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:<port>/postgres
#         ARCHIVER_TEST_PGDATA=<dir>   (cluster dir; the log is <dir>/../postgres.log)
#     and define the function `pg_stop` (stops the server, removes the temp dir; safe to call twice).
#     No trap is installed: the caller runs `pg_stop` when done.
# Never reads standard input. A failed start is reported on stderr but never aborts a `set -e` caller:
# ARCHIVER_TEST_DATABASE_URL then stays unset and the PostgreSQL tests skip.

pg_stop() { :; }

_archiver_pg_start() {
  if [ -n "${ARCHIVER_TEST_DATABASE_URL:-}" ]; then
    echo "postgres.sh: using ARCHIVER_TEST_DATABASE_URL from the environment" >&2
    return 0
  fi
  local bindir=""
  if command -v initdb >/dev/null 2>&1; then
    bindir="$(dirname "$(command -v initdb)")"
  else
    local d
    for d in /usr/local/bin /usr/local/pgsql/bin /usr/lib/postgresql/*/bin; do
      if [ -x "$d/initdb" ]; then bindir="$d"; break; fi
    done
  fi
  if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
    echo "postgres.sh: initdb/pg_ctl not found; PostgreSQL tests will be skipped" >&2
    return 0
  fi

  local run_as=()
  if [ "$(id -u)" = "0" ]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "postgres.sh: running as root but there is no 'postgres' user; PostgreSQL tests will be skipped" >&2
      return 0
    fi
    if command -v runuser >/dev/null 2>&1; then
      run_as=(runuser -u postgres --)
    else
      run_as=(su postgres -s /bin/sh -c)
    fi
  fi
  _pg_as() {  # run a command as the cluster owner
    if [ "${#run_as[@]}" -eq 0 ]; then "$@" </dev/null
    elif [ "${run_as[0]}" = "su" ]; then "${run_as[@]}" "$(printf '%q ' "$@")" </dev/null
    else "${run_as[@]}" "$@" </dev/null
    fi
  }

  local base port
  base="$(mktemp -d "${TMPDIR:-/tmp}/archiver-pg.XXXXXX")" || return 1
  chmod 755 "$base"
  [ "${#run_as[@]}" -gt 0 ] && chown postgres "$base"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')" \
    || { rm -rf "$base"; return 1; }

  if ! _pg_as "$bindir/initdb" -D "$base/data" -U postgres --auth=trust -E UTF8 --no-locale >"$base/initdb.log" 2>&1
  then
    echo "postgres.sh: initdb failed:" >&2; tail -n 20 "$base/initdb.log" >&2; rm -rf "$base"; return 1
  fi
  if ! _pg_as "$bindir/pg_ctl" -D "$base/data" -l "$base/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $base -c fsync=off -c max_connections=100" start \
      >"$base/pg_ctl.log" 2>&1
  then
    echo "postgres.sh: pg_ctl start failed:" >&2; tail -n 20 "$base/postgres.log" >&2; rm -rf "$base"; return 1
  fi

  export ARCHIVER_TEST_PGDATA="$base/data"
  export ARCHIVER_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:${port}/postgres"
  _ARCHIVER_PG_BASE="$base"
  _ARCHIVER_PG_CTL="$bindir/pg_ctl"
  _ARCHIVER_PG_RUN_AS="${run_as[*]}"
  pg_stop() {
    [ -n "${_ARCHIVER_PG_BASE:-}" ] || return 0
    if [ -z "$_ARCHIVER_PG_RUN_AS" ]; then
      "$_ARCHIVER_PG_CTL" -D "$_ARCHIVER_PG_BASE/data" -m fast -w stop >/dev/null 2>&1 </dev/null
    elif [ "${_ARCHIVER_PG_RUN_AS%% *}" = "su" ]; then
      su postgres -s /bin/sh -c "$(printf '%q ' "$_ARCHIVER_PG_CTL" -D "$_ARCHIVER_PG_BASE/data" -m fast -w stop)" \
        >/dev/null 2>&1 </dev/null
    else
      runuser -u postgres -- "$_ARCHIVER_PG_CTL" -D "$_ARCHIVER_PG_BASE/data" -m fast -w stop >/dev/null 2>&1 </dev/null
    fi
    rm -rf "$_ARCHIVER_PG_BASE"
    unset ARCHIVER_TEST_DATABASE_URL ARCHIVER_TEST_PGDATA _ARCHIVER_PG_BASE
  }
  echo "postgres.sh: PostgreSQL on 127.0.0.1:${port} (stop with pg_stop)" >&2
}

_archiver_pg_start || echo "postgres.sh: could not start PostgreSQL; its tests will be skipped" >&2
