#!/usr/bin/env bash
# The real local infrastructure: an Apache Kafka broker (single-node KRaft, jars from Maven
# Central) and FerretDB (MongoDB wire protocol, SQLite backend, data on disk).
#
#   deploy/local/infra.sh install   resolve Kafka, build FerretDB (only what is missing)
#   deploy/local/infra.sh up        install, start both (reusing running ones), wait until ready
#   deploy/local/infra.sh down      stop what this script started
#   deploy/local/infra.sh status    say what answers where, and where PostgreSQL keeps its data
#   deploy/local/infra.sh purge     down, then delete the data (keeps the Kafka jars and FerretDB)
#
# The store backend is PostgreSQL (Debian's server, started here on its own port) unless
# LIENTHONG_STORE_BACKEND=sqlite. FerretDB v1 on SQLite scans a collection for every lookup,
# even by _id; on PostgreSQL equality lookups use indexes.
#
# Where PostgreSQL keeps its data: under the data dir when we are not root. As root it runs as
# the postgres user (it refuses root), who cannot traverse a clone in a mode-700 home, so its
# data lives in /var/lib/lienthong/postgres-<hash of the data dir's path> (one per clone, owned
# by postgres); a clone whose in-tree PostgreSQL data already exists keeps using it.
#
# Kafka's TLS listener (LIENTHONG_KAFKA_TLS_PORT, 9094; "off" for none) requires a client
# certificate and runs the KRaft StandardAuthorizer: the services' principals User:CN=<service>
# get the ACLs declared in lienthong_kit.kafka_access, applied at `up` by the admin
# (User:CN=lienthong-admin). Certificates are generated at `up` into $DATA/kafka/tls (needs
# .venv: `make install`); the plaintext listener stays for make test and make run.
#
# Environment: LIENTHONG_DATA_DIR (default deploy/local/.data), LIENTHONG_KAFKA_PORT (9092),
# LIENTHONG_KAFKA_CONTROLLER_PORT (9093), LIENTHONG_KAFKA_TLS_PORT (9094), LIENTHONG_MONGO_PORT (27017), LIENTHONG_PG_PORT
# (54329), LIENTHONG_PG_DIR (PostgreSQL's folder, see above), LIENTHONG_STORE_BACKEND
# (postgresql|sqlite), KAFKA_HEAP (512m).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=${LIENTHONG_DATA_DIR:-$HERE/.data}
KAFKA_PORT=${LIENTHONG_KAFKA_PORT:-9092}
CONTROLLER_PORT=${LIENTHONG_KAFKA_CONTROLLER_PORT:-9093}
TLS_PORT=${LIENTHONG_KAFKA_TLS_PORT:-9094}
MONGO_PORT=${LIENTHONG_MONGO_PORT:-27017}
PG_PORT=${LIENTHONG_PG_PORT:-54329}
BACKEND=${LIENTHONG_STORE_BACKEND:-postgresql}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
FERRETDB_VERSION=v1.24.2
PY=${PYTHON:-python3}

KAFKA_LIBS=$DATA/kafka-libs
KAFKA_DIR=$DATA/kafka
FERRET_BIN=$DATA/bin/ferretdb
TLS_DIR=$KAFKA_DIR/tls
VENV_PY=$HERE/../../.venv/bin/python
FERRET_DIR=$DATA/ferretdb

# PostgreSQL's folder (data/, its log, its socket): see the header.
pg_dir() {
  if [[ -n ${LIENTHONG_PG_DIR:-} ]]; then echo "$LIENTHONG_PG_DIR"; return; fi
  if [[ $(id -u) != 0 || -f $DATA/postgres/data/PG_VERSION ]]; then echo "$DATA/postgres"; return; fi
  local key
  key=$(mkdir -p "$DATA" && cd -P "$DATA" && pwd | sha256sum | cut -c1-12)
  echo "/var/lib/lienthong/postgres-$key"
}
PG_DIR=$(pg_dir)

say() { printf 'infra: %s\n' "$*"; }
die() { printf 'infra: error: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required ($2) but is not on PATH"
}

install_kafka() {
  local stamp="$KAFKA_LIBS/.pom.sha256" want
  want=$(sha256sum "$HERE/kafka/pom.xml" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return; fi
  need java "Java 17+ runs the Kafka broker; apt-get install openjdk-17-jre-headless"
  need mvn "Maven resolves the Kafka jars from Maven Central; apt-get install maven"
  say "resolving Apache Kafka from Maven Central into $KAFKA_LIBS (about 15 s the first time)"
  rm -rf "$KAFKA_LIBS" && mkdir -p "$KAFKA_LIBS"
  # Debian's Maven 3.8 writes ESC[0m resets even in batch mode unless jansi.noreset is set
  MAVEN_OPTS="${MAVEN_OPTS:-} -Djansi.noreset=true" \
    mvn -q -B --no-transfer-progress -Dstyle.color=never -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
  echo "$want" >"$stamp"
}

install_ferretdb() {
  # not `--version | grep -q`: under pipefail, grep quitting early can SIGPIPE the binary and
  # make a good install look stale
  if [[ -x $FERRET_BIN && $("$FERRET_BIN" --version 2>/dev/null) == *"version: $FERRETDB_VERSION"* ]]; then
    return
  fi
  need go "Go builds FerretDB from its module; see https://go.dev/doc/install"
  say "building FerretDB $FERRETDB_VERSION from its Go module (about 380 s on 2 cores, once)"
  # a build folder of its own, and the binary moved into place at the end: two clones sharing
  # a data dir (worktrees) never build into each other's folder nor run a half-written binary
  local build
  mkdir -p "$DATA/bin" && build=$(mktemp -d "$DATA/ferretdb-build.XXXXXX")
  # expanded now: the EXIT trap runs after this function's locals are gone (set -u)
  trap "rm -rf '$build'" EXIT
  cp "$HERE/ferretdb/go.mod" "$HERE/ferretdb/go.sum" "$HERE/ferretdb/tools.go" "$build/"
  # The module zip ships no build/version/version.txt (it is generated from git in FerretDB's
  # own build); vendor the module and write the release tag there so the binary knows it.
  (cd "$build" && go mod vendor)
  echo "$FERRETDB_VERSION" >"$build/vendor/github.com/FerretDB/FerretDB/build/version/version.txt"
  (cd "$build" && GOFLAGS=-buildvcs=false go build -mod=vendor -o "$build/ferretdb" \
    github.com/FerretDB/FerretDB/cmd/ferretdb)
  mv -f "$build/ferretdb" "$FERRET_BIN"
  rm -rf "$build"
  trap - EXIT
}

probe() { "$PY" "$HERE/probe.py" "$@"; }

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [[ -z $dir ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      say "installing PostgreSQL (Debian package postgresql)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    else
      die "PostgreSQL is required (apt-get install postgresql), or set LIENTHONG_STORE_BACKEND=sqlite"
    fi
  fi
  echo "$dir"
}

# PostgreSQL refuses to run as root: as root, run it as the postgres system user (from /, since
# it may not be able to enter the current directory).
as_pg() {
  if [[ $(id -u) == 0 ]]; then su postgres -s /bin/sh -c "cd / && $*"; else sh -c "$*"; fi
}

start_postgres() {
  local bin
  bin=$(pg_bin)
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then return; fi
  mkdir -p "$PG_DIR"
  if [[ $(id -u) == 0 ]]; then
    chown postgres "$PG_DIR"
    # initdb and the server reach every parent folder as postgres: say which one blocks them
    su postgres -s /bin/sh -c "test -w '$PG_DIR'" \
      || die "the postgres user cannot write $PG_DIR (a parent folder it cannot traverse?); set LIENTHONG_PG_DIR"
  fi
  if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
    say "creating PostgreSQL's data folder $PG_DIR/data"
    as_pg "'$bin/initdb' -D '$PG_DIR/data' -A trust -U postgres -E UTF8 --no-locale" >"$DATA/initdb.log" 2>&1 \
      || die "initdb failed: see $DATA/initdb.log"
  fi
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $PG_DIR/postgres.log)"
  as_pg "'$bin/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/postgres.log' -w -t 60 \
    -o '-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c synchronous_commit=off' start" >/dev/null \
    || die "PostgreSQL did not start: see $PG_DIR/postgres.log"
  as_pg "'$bin/psql' -h 127.0.0.1 -p $PG_PORT -U postgres -tAc \"select 1 from pg_database where datname='ferretdb'\" | grep -q 1 \
    || '$bin/createdb' -h 127.0.0.1 -p $PG_PORT -U postgres ferretdb"
}

stop_postgres() {
  [[ -f $PG_DIR/data/postmaster.pid ]] || return 0
  say "stopping PostgreSQL"
  as_pg "'$(pg_bin)/pg_ctl' -D '$PG_DIR/data' -m fast -w stop" >/dev/null 2>&1 || true
}

start_kafka() {
  if probe kafka "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1; then
    say "Kafka already answers on 127.0.0.1:$KAFKA_PORT (reused)"
    return
  fi
  mkdir -p "$KAFKA_DIR"
  local tls_listener=""
  if tls_wanted; then
    "$VENV_PY" -m lienthong_local.kafka_tls certs "$TLS_DIR" || die "could not make the Kafka TLS certificates"
    tls_listener=",SSL://127.0.0.1:$TLS_PORT"
  fi
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
    -e "s|@TLS_LISTENER@|$tls_listener|g" \
    -e "s|@DATA_DIR@|$KAFKA_DIR|g" "$HERE/kafka/server.properties.in" >"$KAFKA_DIR/server.properties"
  if [[ -n $tls_listener ]]; then
    sed -e "s|@TLS_DIR@|$TLS_DIR|g" "$HERE/kafka/tls.properties.in" >>"$KAFKA_DIR/server.properties"
  fi
  local cp="$KAFKA_LIBS/*" log4j="-Dlog4j2.configurationFile=$HERE/kafka/log4j2.xml"
  if [[ ! -f $KAFKA_DIR/log/meta.properties ]]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" "$log4j" kafka.tools.StorageTool random-uuid)
    java -cp "$cp" "$log4j" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_DIR/server.properties" --standalone >"$KAFKA_DIR/format.log" 2>&1 \
      || die "formatting Kafka storage failed: see $KAFKA_DIR/format.log"
  fi
  say "starting Kafka on 127.0.0.1:$KAFKA_PORT (log: $KAFKA_DIR/kafka.log)"
  setsid nohup java "-Xmx$KAFKA_HEAP" "-Xms$KAFKA_HEAP" -XX:+UseG1GC "$log4j" -cp "$cp" \
    kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/kafka.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/pid"
}

tls_wanted() {
  [[ $TLS_PORT != off ]] || return 1
  [[ -x $VENV_PY ]] && return 0
  say "Kafka TLS listener off: no .venv to make its certificates with (make install)"
  return 1
}

# The declared ACLs, for production's topic names (a test applies its own prefix's).
apply_kafka_acls() {
  [[ $TLS_PORT != off && -f $TLS_DIR/ca.pem && -x $VENV_PY ]] || return 0
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null; then
    say "Kafka has no TLS listener on 127.0.0.1:$TLS_PORT (started without it: infra-down, infra-up)"
    return 0
  fi
  "$VENV_PY" -m lienthong_local.kafka_tls acls "127.0.0.1:$TLS_PORT" "$TLS_DIR" \
    || die "the Kafka ACLs could not be applied"
  say "Kafka TLS listener 127.0.0.1:$TLS_PORT, certificates in $TLS_DIR"
}

# FerretDB v1's lookups on PostgreSQL scan whole collections without this (see the file).
tune_postgres() {
  as_pg "'$(pg_bin)/psql' -h 127.0.0.1 -p $PG_PORT -U postgres -d ferretdb -q -v ON_ERROR_STOP=1 -f -" \
    <"$HERE/../postgres/ferretdb-lookup-indexes.sql" >/dev/null \
    || die "could not install the lookup indexes (deploy/postgres/ferretdb-lookup-indexes.sql)"
}

start_ferretdb() {
  if [[ $BACKEND == postgresql ]]; then
    start_postgres
    tune_postgres
  fi
  if probe mongo "127.0.0.1:$MONGO_PORT" >/dev/null 2>&1; then
    say "document store already answers on 127.0.0.1:$MONGO_PORT (reused)"
    return
  fi
  mkdir -p "$FERRET_DIR/data"
  local backend=(--handler=sqlite --sqlite-url="file:$FERRET_DIR/data/")
  if [[ $BACKEND == postgresql ]]; then
    backend=(--handler=postgresql --postgresql-url="postgres://postgres@127.0.0.1:$PG_PORT/ferretdb")
  fi
  say "starting FerretDB ($BACKEND) on 127.0.0.1:$MONGO_PORT (log: $FERRET_DIR/ferretdb.log)"
  setsid nohup "$FERRET_BIN" "${backend[@]}" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --telemetry=disable --log-level=warn \
    --state-dir="$FERRET_DIR" \
    --debug-addr=- >"$FERRET_DIR/ferretdb.log" 2>&1 </dev/null &
  echo $! >"$FERRET_DIR/pid"
}

wait_ready() {
  probe kafka "127.0.0.1:$KAFKA_PORT" --wait 90 \
    || { tail -20 "$KAFKA_DIR/kafka.log" >&2 2>/dev/null; die "Kafka did not become ready"; }
  probe mongo "127.0.0.1:$MONGO_PORT" --wait 30 \
    || { tail -20 "$FERRET_DIR/ferretdb.log" >&2 2>/dev/null; die "FerretDB did not become ready"; }
  say "ready: Kafka bootstrap 127.0.0.1:$KAFKA_PORT, document store mongodb://127.0.0.1:$MONGO_PORT"
}

stop_pid() {
  local name=$1 pidfile=$2
  [[ -f $pidfile ]] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $name (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
}

status() {
  if probe kafka "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1; then say "Kafka: answering on 127.0.0.1:$KAFKA_PORT"; else say "Kafka: not answering"; fi
  if probe mongo "127.0.0.1:$MONGO_PORT" >/dev/null 2>&1; then say "store: answering on 127.0.0.1:$MONGO_PORT"; else say "store: not answering"; fi
  if [[ $BACKEND == postgresql ]]; then say "PostgreSQL: port $PG_PORT, data in $PG_DIR/data"; fi
}

# Deletes data only: the Kafka jars and the FerretDB binary stay installed.
purge() {
  stop_pid Kafka "$KAFKA_DIR/pid"; stop_pid FerretDB "$FERRET_DIR/pid"; stop_postgres
  say "deleting the data: $KAFKA_DIR $FERRET_DIR $PG_DIR"
  rm -rf "$KAFKA_DIR" "$FERRET_DIR" "$PG_DIR"
}

case "${1:-}" in
  install) mkdir -p "$DATA"; install_kafka; install_ferretdb ;;
  up) mkdir -p "$DATA"; install_kafka; install_ferretdb; start_kafka; start_ferretdb; wait_ready; apply_kafka_acls ;;
  down) stop_pid Kafka "$KAFKA_DIR/pid"; stop_pid FerretDB "$FERRET_DIR/pid"; stop_postgres ;;
  status) status ;;
  purge) purge ;;
  *) echo "usage: $0 {install|up|down|status|purge}" >&2; exit 2 ;;
esac
