#!/usr/bin/env bash
# Local services for karrot-streams, started from real binaries (no Docker):
#   kafka     Kafka 4.4.0 jars from Maven Central (stack/kafka/pom.xml), KRaft combined
#             broker+controller; one node on :9092, or three (KARROT_KAFKA_BROKERS=3) on
#             :9092/:9094/:9096 with controllers on :9093/:9095/:9097
#   registry  Apicurio Registry 3.3.3 (Maven Central tarball, Java 21+), in-memory,
#             Confluent-compatible API at http://localhost:8081/apis/ccompat/v7
#   postgres  Debian's PostgreSQL, own cluster in .stack/postgres,
#             postgresql://karrot:karrot@localhost:5432/karrot
# Everything lives in one ignored folder, <repo>/.stack (KARROT_STACK_DIR); logs in .stack/logs.
# `stack/stack.sh help` lists commands and variables; stack/NOTES.md has timings and the
# registry's behaviour.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

STACK_DIR=${KARROT_STACK_DIR:-$REPO_DIR/.stack}
KAFKA_PORT=${KARROT_KAFKA_PORT:-9092}
KAFKA_CTRL_PORT=${KARROT_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_BROKERS=${KARROT_KAFKA_BROKERS:-1}
REGISTRY_PORT=${KARROT_REGISTRY_PORT:-8081}
REGISTRY_MGMT_PORT=${KARROT_REGISTRY_MGMT_PORT:-$((REGISTRY_PORT + 1000))}
REGISTRY_COMPATIBILITY=${KARROT_REGISTRY_COMPATIBILITY:-BACKWARD}
PG_PORT=${KARROT_PG_PORT:-5432}
START_TIMEOUT=${KARROT_START_TIMEOUT:-120}
# KARROT_STACK_SECURE=1: a second, SASL_SSL listener (SCRAM-SHA-512, a CA and broker certificate
# made here with openssl and keytool) on KARROT_KAFKA_SECURE_PORT, next to the plaintext one.
SECURE=${KARROT_STACK_SECURE:-0}
KAFKA_SECURE_PORT=${KARROT_KAFKA_SECURE_PORT:-$((KAFKA_PORT + 10))}
SASL_USER=${KARROT_STACK_SASL_USER:-karrot}
SASL_PASSWORD=${KARROT_STACK_SASL_PASSWORD:-karrot-scram-secret}
STOP_TIMEOUT=${KARROT_STOP_TIMEOUT:-60}

# docker-compose.yml runs the same versions, ports and settings (tests/unit/test_compose.py).
KAFKA_VERSION=4.4.0
APICURIO_VERSION=3.3.3
PG_VERSION=15 # Debian 12's package, whichever major it installs; the compose image's tag
PG_ROLE=karrot
PG_PASSWORD=karrot
PG_DB=karrot

SERVICES=(kafka registry postgres)

# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

log() { printf '[stack] %s\n' "$*"; }
warn() { printf '[stack] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[stack] ERROR: %s\n' "$*" >&2
  exit 1
}

now() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

init_dirs() {
  mkdir -p "$STACK_DIR"
  STACK_DIR=$(cd "$STACK_DIR" && pwd)
  LOG_DIR=$STACK_DIR/logs
  RUN_DIR=$STACK_DIR/run
  KAFKA_DIR=$STACK_DIR/kafka
  KAFKA_LIBS=$KAFKA_DIR/libs
  REGISTRY_DIR=$STACK_DIR/registry
  REGISTRY_HOME=$REGISTRY_DIR/apicurio-registry-app-$APICURIO_VERSION
  PG_DIR=$STACK_DIR/postgres
  PG_DATA=$PG_DIR/data
  PG_SOCK=$PG_DIR/run
  TLS_DIR=$STACK_DIR/tls
  mkdir -p "$LOG_DIR" "$RUN_DIR" "$KAFKA_DIR" "$REGISTRY_DIR" "$PG_DIR"
}

# True when something accepts TCP connections on localhost:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_alive PIDFILE MARKER: the pid in PIDFILE runs and its command line contains MARKER.
pid_alive() {
  local pidfile=$1 marker=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# launch PIDFILE LOGFILE CMD...: run CMD detached (own session, no stdin), append
# output to LOGFILE, record its pid (the exec'd command keeps the pid of the wrapper).
launch() {
  local pidfile=$1 logfile=$2 i
  shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016  # $$ and $@ are expanded by the inner shell
  nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null &
  for ((i = 0; i < 100; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.05
  done
  die "could not launch $*"
}

# wait_ready NAME LOGFILE PIDFILE MARKER T0 CMD...: poll CMD until it succeeds.
# Fails (printing the log tail) on timeout or when the process dies.
wait_ready() {
  local name=$1 logfile=$2 pidfile=$3 marker=$4 t0=$5
  shift 5
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pidfile ]] && ! pid_alive "$pidfile" "$marker"; then
      fail_start "$name" "$logfile" "process exited during start-up" "$pidfile" "$marker"
    fi
    if ((SECONDS >= deadline)); then
      fail_start "$name" "$logfile" "did not answer within ${START_TIMEOUT}s (KARROT_START_TIMEOUT)" \
        "$pidfile" "$marker"
    fi
    sleep 0.2
  done
  local took
  took=$(elapsed_since "$t0")
  log "$name is up ($(service_address "$name")) in ${took}s"
  TIMINGS+=("$name=${took}s")
}

# fail_start NAME LOGFILE WHY [PIDFILE MARKER]: print the tail of this run's log
# (from the last "===== starting" marker on) and exit; stop the process if given.
fail_start() {
  local name=$1 logfile=$2 why=$3 pidfile=${4:-} marker=${5:-}
  printf '[stack] ERROR: %s %s. Last 40 lines of %s:\n' "$name" "$why" "$logfile" >&2
  awk '/^===== .* starting / { n = 0 } { buf[n++] = $0 } END { for (i = (n > 40 ? n - 40 : 0); i < n; i++) print buf[i] }' \
    "$logfile" >&2 2>/dev/null || true
  if [[ -n $pidfile ]] && pid_alive "$pidfile" "$marker"; then
    printf '[stack] stopping the %s process that did not come up\n' "$name" >&2
    STOP_TIMEOUT=10 stop_pid "$name" "$pidfile" "$marker" >&2
  elif [[ -n $pidfile ]]; then
    rm -f "$pidfile"
  fi
  exit 1
}

# stop_pid NAME PIDFILE MARKER [SIGNAL]: signal the process (SIGNAL 0: already signalled),
# wait for it to exit, SIGKILL it after STOP_TIMEOUT.
stop_pid() {
  local name=$1 pidfile=$2 marker=$3 sig=${4:-TERM} pid deadline
  if ! pid_alive "$pidfile" "$marker"; then
    [[ $sig == 0 && -s $pidfile ]] && log "$name stopped (pid $(<"$pidfile"))"
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  [[ $sig == 0 ]] || kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      warn "$name (pid $pid) still running after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  log "$name stopped (pid $pid)"
}

# First java on the machine whose major version is >= $1 (Kafka needs 17, Apicurio 3.3 needs 21).
find_java() {
  local want=$1 cand ver major
  local -a cands=()
  [[ -n ${KARROT_JAVA:-} ]] && cands+=("$KARROT_JAVA")
  [[ -n ${JAVA_HOME:-} ]] && cands+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && cands+=("$(command -v java)")
  for cand in /usr/lib/jvm/*/bin/java; do
    [[ -x $cand ]] && cands+=("$cand")
  done
  for cand in "${cands[@]}"; do
    [[ -x $cand ]] || continue
    ver=$("$cand" -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')
    major=${ver%%.*}
    [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$ver")
    if [[ $major =~ ^[0-9]+$ ]] && ((major >= want)); then
      printf '%s\n' "$cand"
      return 0
    fi
  done
  return 1
}

service_address() {
  case $1 in
    kafka) printf 'localhost:%s' "$(kafka_bootstrap)" ;;
    kafka-*) printf 'localhost:%s' "$(kafka_port "${1#kafka-}")" ;;
    registry) printf 'http://localhost:%s/apis/ccompat/v7' "$REGISTRY_PORT" ;;
    postgres) printf 'postgresql://%s:%s@localhost:%s/%s' "$PG_ROLE" "$PG_PASSWORD" "$PG_PORT" "$PG_DB" ;;
  esac
}

# ----------------------------------------------------------------------------
# Kafka
# ----------------------------------------------------------------------------

# Node n (1-based) of an N-node cluster listens on base+2(n-1) (9092/9094/9096,
# controllers 9093/9095/9097). With one node it is plainly the base ports.
kafka_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
kafka_ctrl_port() { echo $((KAFKA_CTRL_PORT + 2 * ($1 - 1))); }

# Where node n keeps its config/data, and its pid/log names. Single mode uses
# .stack/kafka directly; cluster mode .stack/kafka/cluster/node<n>.
kafka_node_dir() {
  if ((KAFKA_BROKERS == 1)); then echo "$KAFKA_DIR"; else echo "$KAFKA_DIR/cluster/node$1"; fi
}
kafka_name() {
  if ((KAFKA_BROKERS == 1)); then echo kafka; else echo "kafka-$1"; fi
}

kafka_bootstrap() {
  local n out=""
  for ((n = 1; n <= KAFKA_BROKERS; n++)); do
    out+="${out:+,localhost:}$(kafka_port "$n")"
  done
  echo "$out"
}

# Answers a Metadata (v4) request listing at least $3 live brokers and a controller.
kafka_probe() {
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$@" <<'PY'
import socket, struct, sys

host, port, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def recvn(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf

try:
    sock = socket.create_connection((host, port), timeout=2)
    client = b"karrot-stack"
    # request header v1: api_key=3 (Metadata), version 4, correlation id, client id
    msg = struct.pack(">hhih", 3, 4, 7, len(client)) + client
    msg += struct.pack(">i?", -1, False)  # all topics, no auto-creation
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recvn(sock, 4))[0]
    data = recvn(sock, size)
    if struct.unpack_from(">i", data, 0)[0] != 7:
        sys.exit(1)
    off = 4 + 4  # correlation id, throttle_time_ms
    count = struct.unpack_from(">i", data, off)[0]
    off += 4
    for _ in range(count):
        off += 4  # node id
        off += 2 + struct.unpack_from(">h", data, off)[0]  # host
        off += 4  # port
        off += 2 + max(struct.unpack_from(">h", data, off)[0], 0)  # rack
    off += 2 + max(struct.unpack_from(">h", data, off)[0], 0)  # cluster id
    controller = struct.unpack_from(">i", data, off)[0]
    sys.exit(0 if count >= want and controller >= 0 else 1)
except Exception:
    sys.exit(1)
PY
  else
    port_open "$2" && grep -q 'Kafka Server started' "$LOG_DIR/$(kafka_name "${4:-1}").log"
  fi
}

# mvn -q -B ARGS, output to logs/fetch.log (shown on failure). Runs from $STACK_DIR.
mvn_quiet() {
  command -v mvn >/dev/null 2>&1 || die "mvn not found (apt-get install maven)"
  if ! (cd "$STACK_DIR" && mvn -q -B "$@") >>"$LOG_DIR/fetch.log" 2>&1; then
    tail -n 40 "$LOG_DIR/fetch.log" >&2
    die "mvn $* failed (full output in $LOG_DIR/fetch.log)"
  fi
}

kafka_fetch() {
  local pom=$SCRIPT_DIR/kafka/pom.xml stamp want
  stamp=$KAFKA_LIBS/.complete
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
    return 0
  fi
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS" "$KAFKA_LIBS.tmp"
  mvn_quiet -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_LIBS.tmp"
  [[ -f $KAFKA_LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka_2.13-$KAFKA_VERSION.jar was not fetched"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
  echo "$want" >"$stamp"
}

kafka_write_log4j() {
  cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
# Written by stack/stack.sh: everything to stdout, which goes to .stack/logs/kafka*.log
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.network.name = kafka.network.RequestChannel$
logger.network.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
# the full config dump of every internal client; server.properties is next to this file
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
EOF
}

secure() { [[ $SECURE == 1 ]]; }

# KARROT_STACK_SECURE=1 on a broker that cannot have the listener: say why, and go on without
# it (the secured-listener tests skip) rather than refuse to start the stack.
kafka_secure_possible() {
  local dir
  secure || return 0
  dir=$(kafka_node_dir 1)
  if pid_alive "$RUN_DIR/$(kafka_name 1).pid" kafka.Kafka && ! grep -q '^listeners=.*SASL_SSL' "$dir/server.properties" 2>/dev/null; then
    warn "Kafka runs without the SASL_SSL listener: 'stack.sh stop kafka' and start again to add it"
    SECURE=0
  elif [[ -f $dir/data/meta.properties && ! -f $dir/data/.karrot-scram ]]; then
    warn "Kafka's storage in $dir/data was formatted without SCRAM users (they are made at format time): remove $dir/data (or use another KARROT_STACK_DIR) for the SASL_SSL listener"
    SECURE=0
  fi
  return 0
}

# A CA and a broker certificate for localhost/127.0.0.1 (openssl), the broker's PKCS#12
# keystore, and a JKS truststore of the CA (keytool, for Java clients). Made once per stack dir;
# clients trust $TLS_DIR/ca.pem.
kafka_tls() {
  secure || return 0
  ((KAFKA_BROKERS == 1)) || die "KARROT_STACK_SECURE=1 runs with one broker only"
  command -v openssl >/dev/null 2>&1 || die "KARROT_STACK_SECURE=1 needs openssl"
  [[ -s $TLS_DIR/broker.p12 ]] && return 0
  log "making a CA and a broker certificate in $TLS_DIR"
  rm -rf "$TLS_DIR.tmp"
  mkdir -p "$TLS_DIR.tmp"
  (
    cd "$TLS_DIR.tmp"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=karrot-stack-ca" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile broker.ext -out broker.pem
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -passout "pass:$SASL_PASSWORD" -out broker.p12
    "$KAFKA_JAVA_BIN_DIR/keytool" -importcert -noprompt -alias ca -file ca.pem \
      -keystore truststore.jks -storepass "$SASL_PASSWORD"
  ) >>"$LOG_DIR/tls.log" 2>&1 || die "making the certificates failed (see $LOG_DIR/tls.log)"
  chmod 600 "$TLS_DIR.tmp"/*.key
  rm -rf "$TLS_DIR"
  mv "$TLS_DIR.tmp" "$TLS_DIR"
}

kafka_write_props() {
  local n=$1 dir voters="" i rf=1 isr=1
  dir=$(kafka_node_dir "$n")
  mkdir -p "$dir/data"
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    voters+="${voters:+,}$i@localhost:$(kafka_ctrl_port "$i")"
  done
  if ((KAFKA_BROKERS >= 3)); then
    rf=3
    isr=2
  fi
  local secure_listener=""
  if secure; then secure_listener=",SASL_SSL://localhost:$KAFKA_SECURE_PORT"; fi
  cat >"$dir/server.properties" <<EOF
# Written by stack/stack.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://localhost:$(kafka_port "$n"),CONTROLLER://localhost:$(kafka_ctrl_port "$n")$secure_listener
advertised.listeners=PLAINTEXT://localhost:$(kafka_port "$n")$secure_listener
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT${secure_listener:+,SASL_SSL:SASL_SSL}
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=true
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
EOF
  if secure; then
    cat >>"$dir/server.properties" <<EOF
# KARROT_STACK_SECURE=1: SCRAM-SHA-512 over TLS; the users are created at format time.
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$SASL_PASSWORD
ssl.key.password=$SASL_PASSWORD
EOF
  fi
}

kafka_cluster_id() {
  local idfile=$1
  if [[ ! -s $idfile ]]; then
    "$KAFKA_JAVA" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$idfile.tmp"
    [[ -s $idfile.tmp ]] || die "kafka.tools.StorageTool random-uuid failed"
    mv "$idfile.tmp" "$idfile"
  fi
  cat "$idfile"
}

kafka_format() {
  local n=$1 dir cid idfile
  local -a scram=()
  dir=$(kafka_node_dir "$n")
  [[ -f $dir/data/meta.properties ]] && return 0
  if secure; then
    scram=(--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]")
  fi
  if ((KAFKA_BROKERS == 1)); then idfile=$KAFKA_DIR/cluster.id; else idfile=$KAFKA_DIR/cluster/cluster.id; fi
  cid=$(kafka_cluster_id "$idfile")
  log "formatting $(kafka_name "$n") storage (cluster id $cid)"
  "$KAFKA_JAVA" -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" "${scram[@]}" \
    >>"$LOG_DIR/$(kafka_name "$n").log" 2>&1 ||
    fail_start "$(kafka_name "$n")" "$LOG_DIR/$(kafka_name "$n").log" "storage format failed"
  if secure; then touch "$dir/data/.karrot-scram"; fi
}

# The other Kafka mode (single vs cluster) must not be running on the same ports.
kafka_check_mode() {
  local f
  if ((KAFKA_BROKERS == 1)); then
    for f in "$RUN_DIR"/kafka-*.pid; do
      [[ -e $f ]] || continue
      pid_alive "$f" kafka.Kafka && die "a ${f##*/kafka-} three-broker cluster is running; 'stack.sh stop kafka' first"
    done
  else
    pid_alive "$RUN_DIR/kafka.pid" kafka.Kafka && die "single-node Kafka is running; 'stack.sh stop kafka' first"
  fi
  return 0
}

# kafka_launch_node N: start node N in the background (no wait). Echoes nothing;
# sets KAFKA_LAUNCHED[N]=t0 when it launched something.
kafka_launch_node() {
  local n=$1 name dir port pidfile logfile heap
  name=$(kafka_name "$n")
  dir=$(kafka_node_dir "$n")
  port=$(kafka_port "$n")
  pidfile=$RUN_DIR/$name.pid
  logfile=$LOG_DIR/$name.log
  if pid_alive "$pidfile" kafka.Kafka; then
    if kafka_probe localhost "$port" 1 "$n"; then
      log "$name already running (pid $(<"$pidfile"), localhost:$port)"
    else
      KAFKA_LAUNCHED[n]=$(now) # running but not answering yet: wait for it
    fi
    return 0
  fi
  rm -f "$pidfile"
  if port_open "$port"; then
    if kafka_probe localhost "$port" 1 "$n"; then
      log "$name: a Kafka broker not started by stack.sh already answers on localhost:$port; leaving it alone"
      return 0
    fi
    die "$name: port $port is in use by another program"
  fi
  if port_open "$(kafka_ctrl_port "$n")"; then
    die "$name: controller port $(kafka_ctrl_port "$n") is in use by another program"
  fi
  heap=${KARROT_KAFKA_HEAP:-$( ((KAFKA_BROKERS == 1)) && echo 1g || echo 512m)}
  printf '\n===== %s starting %s =====\n' "$(date -Is)" "$name" >>"$logfile"
  KAFKA_LAUNCHED[n]=$(now)
  launch "$pidfile" "$logfile" "$KAFKA_JAVA" "-Xmx$heap" "-Xms256m" -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    -Dkafka.logs.dir="$LOG_DIR" -Dkarrot.stack.node="$name" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties"
  log "$name launched (pid $(<"$pidfile")), waiting for localhost:$port"
}

# kafka_wait_node N WANT: wait until node N answers metadata listing WANT live brokers.
kafka_wait_node() {
  local n=$1 want=$2 name
  name=$(kafka_name "$n")
  [[ -n ${KAFKA_LAUNCHED[n]:-} ]] || return 0
  wait_ready "$name" "$LOG_DIR/$name.log" "$RUN_DIR/$name.pid" kafka.Kafka "${KAFKA_LAUNCHED[n]}" \
    kafka_probe localhost "$(kafka_port "$n")" "$want" "$n"
}

# prepare_kafka [N...]: config + storage format for the given nodes (default: all) not running.
prepare_kafka() {
  local n
  local -a nodes=("$@")
  [[ $KAFKA_BROKERS =~ ^[13]$ ]] || die "KARROT_KAFKA_BROKERS must be 1 or 3 (got $KAFKA_BROKERS)"
  kafka_fetch
  KAFKA_JAVA=$(find_java 17) || die "Kafka $KAFKA_VERSION needs Java 17+"
  KAFKA_JAVA_BIN_DIR=$(dirname "$(readlink -f "$KAFKA_JAVA")")
  kafka_check_mode
  kafka_write_log4j
  kafka_secure_possible
  kafka_tls
  if ((KAFKA_BROKERS > 1)); then mkdir -p "$KAFKA_DIR/cluster"; fi
  if ((${#nodes[@]} == 0)); then
    for ((n = 1; n <= KAFKA_BROKERS; n++)); do nodes+=("$n"); done
  fi
  for n in "${nodes[@]}"; do
    pid_alive "$RUN_DIR/$(kafka_name "$n").pid" kafka.Kafka && continue
    kafka_write_props "$n"
    kafka_format "$n"
  done
  return 0
}

launch_kafka() {
  local n
  for ((n = 1; n <= KAFKA_BROKERS; n++)); do kafka_launch_node "$n"; done
}

wait_kafka() {
  local n deadline
  for ((n = 1; n <= KAFKA_BROKERS; n++)); do kafka_wait_node "$n" "$KAFKA_BROKERS"; done
  if secure; then
    deadline=$((SECONDS + START_TIMEOUT))
    until port_open "$KAFKA_SECURE_PORT"; do
      ((SECONDS < deadline)) || die "the SASL_SSL listener did not open on localhost:$KAFKA_SECURE_PORT"
      sleep 0.2
    done
    log "kafka SASL_SSL listener on localhost:$KAFKA_SECURE_PORT (SCRAM-SHA-512 user $SASL_USER, CA $TLS_DIR/ca.pem)"
  fi
}

# All Kafka nodes started by this script, whichever mode.
kafka_pidfiles() {
  local f
  for f in "$RUN_DIR"/kafka.pid "$RUN_DIR"/kafka-*.pid; do
    [[ -e $f ]] && echo "$f"
  done
  return 0
}

stop_kafka() {
  local f name
  local -a files=() alive=()
  mapfile -t files < <(kafka_pidfiles)
  for f in "${files[@]}"; do
    if pid_alive "$f" kafka.Kafka; then alive+=("$f"); else rm -f "$f"; fi
  done
  if ((${#alive[@]} == 0)); then
    log "kafka was not running"
    return 0
  fi
  # Signal every node first so controlled shutdowns run while the quorum is still up.
  for f in "${alive[@]}"; do kill -TERM "$(<"$f")" 2>/dev/null || true; done
  for f in "${alive[@]}"; do
    name=${f##*/}
    stop_pid "${name%.pid}" "$f" kafka.Kafka 0
  done
}

kill_broker() {
  local n=${1:-} sig=TERM name
  [[ $n =~ ^[0-9]+$ ]] || die "usage: stack.sh kill-broker N [--hard]"
  [[ ${2:-} == --hard ]] && sig=KILL
  KAFKA_BROKERS=$(kafka_running_brokers)
  ((n >= 1 && n <= KAFKA_BROKERS)) || die "no broker $n (cluster size $KAFKA_BROKERS)"
  name=$(kafka_name "$n")
  pid_alive "$RUN_DIR/$name.pid" kafka.Kafka || die "$name is not running"
  stop_pid "$name" "$RUN_DIR/$name.pid" kafka.Kafka "$sig"
}

start_broker() {
  local n=${1:-} i want=0
  [[ $n =~ ^[0-9]+$ ]] || die "usage: stack.sh start-broker N"
  KAFKA_BROKERS=$(kafka_running_brokers)
  ((n >= 1 && n <= KAFKA_BROKERS)) || die "no broker $n (cluster size $KAFKA_BROKERS)"
  prepare_kafka "$n"
  kafka_launch_node "$n"
  # Wait until the node sees itself and every other running node as live brokers.
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    if pid_alive "$RUN_DIR/$(kafka_name "$i").pid" kafka.Kafka; then want=$((want + 1)); fi
  done
  kafka_wait_node "$n" "$want"
}

# Cluster size: 3 while three-broker pid files exist, 1 while the single node's
# does, else KARROT_KAFKA_BROKERS.
kafka_running_brokers() {
  if compgen -G "$RUN_DIR/kafka-*.pid" >/dev/null; then
    echo 3
  elif [[ -e $RUN_DIR/kafka.pid ]]; then
    echo 1
  else
    echo "$KAFKA_BROKERS"
  fi
}

# ----------------------------------------------------------------------------
# Apicurio Registry
# ----------------------------------------------------------------------------

registry_fetch() {
  [[ -f $REGISTRY_HOME/quarkus-run.jar ]] && return 0
  local tarball=$REGISTRY_DIR/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz
  if [[ ! -f $tarball ]]; then
    log "fetching Apicurio Registry $APICURIO_VERSION from Maven Central (~160 MB)"
    mvn_quiet dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
      -DoutputDirectory="$REGISTRY_DIR"
  fi
  rm -rf "$REGISTRY_HOME.tmp"
  mkdir -p "$REGISTRY_HOME.tmp"
  tar --no-same-owner -xzf "$tarball" -C "$REGISTRY_HOME.tmp"
  [[ -f $REGISTRY_HOME.tmp/quarkus-run.jar ]] || die "quarkus-run.jar missing from $tarball"
  rm -rf "$REGISTRY_HOME"
  mv "$REGISTRY_HOME.tmp" "$REGISTRY_HOME"
  rm -f "$tarball" # the copy in ~/.m2 stays
}

registry_probe() {
  curl -sf -o /dev/null --max-time 2 "http://localhost:$REGISTRY_PORT/apis/ccompat/v7/subjects"
}

prepare_registry() {
  registry_fetch
  REGISTRY_JAVA=$(find_java 21) ||
    die "Apicurio Registry $APICURIO_VERSION needs Java 21+ (none found; set KARROT_JAVA=/path/to/java)"
}

# launch_registry: start it in the background; sets REGISTRY_T0 when wait_registry must wait.
launch_registry() {
  local pidfile=$RUN_DIR/registry.pid logfile=$LOG_DIR/registry.log
  REGISTRY_T0=
  if registry_probe; then
    if pid_alive "$pidfile" quarkus-run.jar; then
      log "registry already running (pid $(<"$pidfile"), $(service_address registry))"
    else
      log "registry: something not started by stack.sh already answers on port $REGISTRY_PORT; leaving it alone"
    fi
    return 0
  fi
  if pid_alive "$pidfile" quarkus-run.jar; then
    REGISTRY_T0=$(now) # started but not answering yet
    return 0
  fi
  if port_open "$REGISTRY_PORT"; then
    die "registry: port $REGISTRY_PORT is in use by another program"
  fi
  if port_open "$REGISTRY_MGMT_PORT"; then
    die "registry: management port $REGISTRY_MGMT_PORT is in use (set KARROT_REGISTRY_MGMT_PORT)"
  fi
  mkdir -p "$REGISTRY_DIR/tmp"
  printf '\n===== %s starting registry =====\n' "$(date -Is)" >>"$logfile"
  REGISTRY_T0=$(now)
  # In-memory (H2) storage: the registry is empty after every restart.
  launch "$pidfile" "$logfile" "$REGISTRY_JAVA" -Xmx512m -Xms128m -Djava.awt.headless=true \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MGMT_PORT" \
    -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
    -Dapicurio.rules.global.compatibility="$REGISTRY_COMPATIBILITY" \
    -Dapicurio.ccompat.legacy-id-mode.enabled=false \
    -Dapicurio.rest.deletion.group.enabled=true \
    -Dapicurio.rest.deletion.artifact.enabled=true \
    -Dapicurio.rest.deletion.artifact-version.enabled=true \
    -Djava.io.tmpdir="$REGISTRY_DIR/tmp" \
    -jar "$REGISTRY_HOME/quarkus-run.jar"
  log "registry launched (pid $(<"$pidfile")), waiting for port $REGISTRY_PORT"
}

wait_registry() {
  [[ -n ${REGISTRY_T0:-} ]] || return 0
  wait_ready registry "$LOG_DIR/registry.log" "$RUN_DIR/registry.pid" quarkus-run.jar "$REGISTRY_T0" \
    registry_probe
}

stop_registry() {
  if pid_alive "$RUN_DIR/registry.pid" quarkus-run.jar; then
    stop_pid registry "$RUN_DIR/registry.pid" quarkus-run.jar
  else
    rm -f "$RUN_DIR/registry.pid"
    log "registry was not running"
  fi
}

# ----------------------------------------------------------------------------
# PostgreSQL
# ----------------------------------------------------------------------------

pg_bindir() {
  local v d
  if [[ -f $PG_DATA/PG_VERSION ]]; then
    v=$(<"$PG_DATA/PG_VERSION")
    [[ -x /usr/lib/postgresql/$v/bin/postgres ]] ||
      die "$PG_DATA was created by PostgreSQL $v, whose binaries are not installed"
    echo "/usr/lib/postgresql/$v/bin"
    return 0
  fi
  d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n1)
  [[ -n $d ]] || return 1
  dirname "$d"
}

postgres_fetch() {
  pg_bindir >/dev/null 2>&1 && return 0
  ((EUID == 0)) || die "PostgreSQL is not installed; run as root or: sudo apt-get install -y postgresql"
  log "installing PostgreSQL from Debian (waits for the apt/dpkg lock if another install runs)"
  apt-get -o DPkg::Lock::Timeout=900 -o Acquire::Retries=3 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq postgresql >/dev/null
  pg_bindir >/dev/null 2>&1 || die "PostgreSQL install did not provide /usr/lib/postgresql/*/bin/initdb"
}

# Run a command as the database owner: the postgres OS user when we are root
# (postgres refuses to run as root), else ourselves. From / , since the caller's
# folder (e.g. /root/...) may be closed to postgres; all our paths are absolute.
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# The postgres user must be able to reach $PG_DIR: add o+x where it cannot.
pg_fix_traversal() {
  ((EUID == 0)) || return 0
  local d=$PG_DIR
  local -a path=()
  while [[ $d != / ]]; do
    path=("$d" "${path[@]}")
    d=$(dirname "$d")
  done
  for d in "${path[@]}"; do
    if ! runuser -u postgres -- test -x "$d"; then
      log "chmod o+x $d (so the postgres user can reach its data dir)"
      chmod o+x "$d"
    fi
  done
}

pg_probe() {
  "$PG_BIN/pg_isready" -q -h localhost -p "$PG_PORT" -t 2
}

# The Debian package creates and may start its own cluster (15/main on 5432):
# stop any pg_ctlcluster-managed cluster that is online on our port.
pg_stop_debian_cluster() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  local ver name port status
  while read -r ver name port status _; do
    if [[ $port == "$PG_PORT" && $status == online* ]]; then
      log "stopping the Debian PostgreSQL cluster $ver/$name, which holds port $PG_PORT"
      pg_ctlcluster "$ver" "$name" stop || warn "pg_ctlcluster $ver $name stop failed"
    fi
  done < <(pg_lsclusters --no-header 2>/dev/null || true)
  return 0
}

pg_psql_admin() {
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres "$@"
}

pg_bootstrap() {
  local sql
  sql="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;"
  pg_psql_admin -c "$sql" >/dev/null
  if [[ -z $(pg_psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ]]; then
    pg_psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE" >/dev/null
    log "created database $PG_DB owned by $PG_ROLE"
  fi
  PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -X -q -h localhost -p "$PG_PORT" -U "$PG_ROLE" -d "$PG_DB" \
    -tAc 'SELECT 1' >/dev/null || die "cannot connect as $(service_address postgres)"
}

pg_ours_running() {
  [[ -f $PG_DATA/postmaster.pid ]] && pid_alive "$RUN_DIR/postgres.pid" postgres
}

# prepare_postgres: install if needed, free the port, permissions, initdb.
prepare_postgres() {
  local logfile=$LOG_DIR/postgres.log owner
  postgres_fetch
  PG_BIN=$(pg_bindir) || die "PostgreSQL binaries not found"
  pg_ours_running && return 0
  pg_stop_debian_cluster
  pg_probe && return 0 # a server that is not ours (e.g. docker compose): launch_postgres says so
  if port_open "$PG_PORT"; then
    die "postgres: port $PG_PORT is in use by another program (set KARROT_PG_PORT)"
  fi
  owner=$(id -un)
  if ((EUID == 0)); then owner=postgres; fi
  pg_fix_traversal
  mkdir -p "$PG_DATA" "$PG_SOCK"
  chown "$owner" "$PG_DATA" "$PG_SOCK"
  chmod 700 "$PG_DATA"
  chmod 755 "$PG_SOCK"
  touch "$logfile"
  chown "$owner" "$logfile"
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    [[ -z $(ls -A "$PG_DATA") ]] || die "$PG_DATA is not empty but has no PG_VERSION; remove it"
    log "initdb $PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >>"$logfile" 2>&1 ||
      fail_start postgres "$logfile" "initdb failed"
  fi
}

# The event store's seven indexes (the seed's schema) outgrow PostgreSQL's 128 MB default
# buffer cache after a few million rows: each insert then reads index pages back from the OS
# (the bench's upsert of 500 rows took 73 ms on a 2.7M-row table). A dev machine has memory.
PG_TUNING="-c shared_buffers=${KARROT_PG_SHARED_BUFFERS:-1GB}"

# launch_postgres: start the server; sets PG_T0 when wait_postgres must wait.
launch_postgres() {
  local pidfile=$RUN_DIR/postgres.pid logfile=$LOG_DIR/postgres.log i
  PG_T0=
  if pg_probe; then
    if pg_ours_running; then
      log "postgres already running (pid $(<"$pidfile"), $(service_address postgres))"
    else
      log "postgres: a server not started by stack.sh already answers on port $PG_PORT; leaving it alone"
    fi
    return 0
  fi
  if pg_ours_running; then
    PG_T0=$(now) # started but not answering yet
    return 0
  fi
  printf '\n===== %s starting postgres =====\n' "$(date -Is)" >>"$logfile"
  PG_T0=$(now)
  if ! as_pg setsid "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$logfile" -W \
    -o "-c port=$PG_PORT -c listen_addresses=localhost -c unix_socket_directories='$PG_SOCK' $PG_TUNING" \
    start >/dev/null 2>"$RUN_DIR/pg_ctl.err"; then
    cat "$RUN_DIR/pg_ctl.err" >>"$logfile"
    fail_start postgres "$logfile" "pg_ctl start failed"
  fi
  rm -f "$RUN_DIR/pg_ctl.err"
  for ((i = 0; i < 100; i++)); do
    [[ -s $PG_DATA/postmaster.pid ]] && break
    sleep 0.05
  done
  head -n1 "$PG_DATA/postmaster.pid" >"$pidfile" 2>/dev/null || true
  log "postgres launched (pid $(cat "$pidfile" 2>/dev/null)), waiting for port $PG_PORT"
}

wait_postgres() {
  [[ -n ${PG_T0:-} ]] || return 0
  wait_ready postgres "$LOG_DIR/postgres.log" "$RUN_DIR/postgres.pid" postgres "$PG_T0" pg_probe
  pg_bootstrap
}

stop_postgres() {
  local pidfile=$RUN_DIR/postgres.pid pid
  # Our data dir is ours: stop its server even if the pid file went missing.
  if ! pid_alive "$pidfile" postgres && [[ -s $PG_DATA/postmaster.pid ]]; then
    pid=$(head -n1 "$PG_DATA/postmaster.pid")
    [[ $pid =~ ^[0-9]+$ ]] && echo "$pid" >"$pidfile"
  fi
  if ! pid_alive "$pidfile" postgres; then
    rm -f "$pidfile"
    log "postgres was not running"
    return 0
  fi
  PG_BIN=$(pg_bindir) || die "PostgreSQL binaries not found"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null ||
    stop_pid postgres "$pidfile" postgres
  rm -f "$pidfile"
  log "postgres stopped"
}

# ----------------------------------------------------------------------------
# "already answers": probes that need nothing of the service's own binaries
# ----------------------------------------------------------------------------

# Every node of the configured cluster answers metadata with all brokers live.
kafka_answers() {
  local n
  for ((n = 1; n <= KAFKA_BROKERS; n++)); do
    kafka_probe localhost "$(kafka_port "$n")" "$KAFKA_BROKERS" "$n" || return 1
  done
}

registry_answers() { registry_probe; }

# A PostgreSQL server answers an SSLRequest with one byte, S or N (the protocol's first
# message), so no pg_isready is needed.
postgres_answers() {
  port_open "$PG_PORT" || return 1
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$PG_PORT" <<'PY'
import socket, struct, sys

try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as sock:
        sock.sendall(struct.pack(">ii", 8, 80877103))
        sys.exit(0 if sock.recv(1) in (b"S", b"N") else 1)
except OSError:
    sys.exit(1)
PY
  else
    PG_BIN=$(pg_bindir 2>/dev/null) && pg_probe
  fi
}

# ----------------------------------------------------------------------------
# status
# ----------------------------------------------------------------------------

status_line() {
  local name=$1 state=$2 addr=$3 pidfile=$4 extra=""
  if [[ -s $pidfile ]]; then
    extra=" pid $(<"$pidfile")"
  elif [[ $state == up ]]; then
    extra=" (not started by stack.sh)"
  fi
  printf '%-10s %-5s %s%s\n' "$name" "$state" "$addr" "$extra"
}

status() {
  local rc=0 n name brokers
  brokers=$(kafka_running_brokers)
  KAFKA_BROKERS=$brokers
  for ((n = 1; n <= brokers; n++)); do
    name=$(kafka_name "$n")
    if kafka_probe localhost "$(kafka_port "$n")" 1 "$n"; then
      status_line "$name" up "localhost:$(kafka_port "$n")" "$RUN_DIR/$name.pid"
    else
      status_line "$name" down "localhost:$(kafka_port "$n")" "$RUN_DIR/$name.pid"
      rc=1
    fi
  done
  if registry_probe; then
    status_line registry up "$(service_address registry)" "$RUN_DIR/registry.pid"
  else
    status_line registry down "$(service_address registry)" "$RUN_DIR/registry.pid"
    rc=1
  fi
  if PG_BIN=$(pg_bindir 2>/dev/null) && pg_probe; then
    status_line postgres up "$(service_address postgres)" "$RUN_DIR/postgres.pid"
  else
    status_line postgres down "$(service_address postgres)" "$RUN_DIR/postgres.pid"
    rc=1
  fi
  printf 'data: %s\n' "$STACK_DIR"
  return "$rc"
}

# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------

usage() {
  cat <<EOF
usage: stack/stack.sh COMMAND [SERVICE]
  fetch  [kafka|registry|postgres]   download jars / install packages (start does it too)
  start  [kafka|registry|postgres]   start (no-op for services that already answer)
  stop   [kafka|registry|postgres]   stop what stack.sh started, remove pid files
  status                             up/down and address of each service (exit 1 if any is down)
  logs   SERVICE                     tail -f .stack/logs/SERVICE.log
  kill-broker N [--hard]             stop Kafka node N (SIGTERM; --hard: SIGKILL)
  start-broker N                     start Kafka node N again
env: KARROT_STACK_DIR (default <repo>/.stack), KARROT_KAFKA_PORT (9092),
     KARROT_KAFKA_CONTROLLER_PORT (9093), KARROT_KAFKA_BROKERS (1 or 3),
     KARROT_REGISTRY_PORT (8081), KARROT_REGISTRY_MGMT_PORT (REGISTRY_PORT+1000),
     KARROT_REGISTRY_COMPATIBILITY (BACKWARD), KARROT_PG_PORT (5432),
     KARROT_START_TIMEOUT (120 s), KARROT_KAFKA_HEAP (1g, 512m per node for 3), KARROT_JAVA,
     KARROT_STACK_SECURE (1: also a SASL_SSL listener), KARROT_KAFKA_SECURE_PORT (KAFKA_PORT+10),
     KARROT_STACK_SASL_USER (karrot), KARROT_STACK_SASL_PASSWORD (karrot-scram-secret),
     KARROT_PG_SHARED_BUFFERS (1GB)
EOF
}

selected_services() {
  if [[ -z ${1:-} ]]; then
    printf '%s\n' "${SERVICES[@]}"
    return 0
  fi
  case $1 in
    kafka | registry | postgres) echo "$1" ;;
    *) die "unknown service '$1' (kafka|registry|postgres)" ;;
  esac
}

main() {
  local cmd=${1:-} svc t0
  local -a svcs=()
  [[ -n $cmd ]] || {
    usage
    exit 2
  }
  shift
  init_dirs
  TIMINGS=()
  KAFKA_LAUNCHED=()
  case $cmd in
    fetch)
      mapfile -t svcs < <(selected_services "${1:-}")
      for svc in "${svcs[@]}"; do "${svc}_fetch"; done
      log "fetch done"
      ;;
    start)
      mapfile -t svcs < <(selected_services "${1:-}")
      # A service that already answers (started earlier, by docker compose, by anyone) is left
      # alone before anything is fetched or prepared: that path needs no Maven, JDK or
      # PostgreSQL binaries.
      local -a todo=()
      for svc in "${svcs[@]}"; do
        if "${svc}_answers"; then
          log "$svc already answers ($(service_address "$svc")); leaving it alone"
        else
          todo+=("$svc")
        fi
      done
      svcs=("${todo[@]}")
      for svc in "${svcs[@]}"; do "${svc}_fetch"; done
      for svc in "${svcs[@]}"; do "prepare_$svc"; done
      t0=$(now)
      # Launch everything, then wait: the JVMs start in parallel.
      for svc in postgres registry kafka; do
        if [[ " ${svcs[*]} " == *" $svc "* ]]; then "launch_$svc"; fi
      done
      for svc in postgres registry kafka; do
        if [[ " ${svcs[*]} " == *" $svc "* ]]; then "wait_$svc"; fi
      done
      if ((${#TIMINGS[@]})); then
        log "started: ${TIMINGS[*]} (wall clock $(elapsed_since "$t0")s)"
      else
        log "nothing to start: everything already answers"
      fi
      ;;
    stop)
      mapfile -t svcs < <(selected_services "${1:-}")
      for svc in kafka registry postgres; do
        if [[ " ${svcs[*]} " == *" $svc "* ]]; then "stop_$svc"; fi
      done
      ;;
    status) status ;;
    logs)
      [[ -n ${1:-} ]] || die "usage: stack.sh logs SERVICE"
      tail -n 100 -f "$LOG_DIR/$1.log"
      ;;
    kill-broker) kill_broker "$@" ;;
    start-broker) start_broker "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
