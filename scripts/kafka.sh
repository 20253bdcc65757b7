#!/usr/bin/env bash
# A real Apache Kafka broker for development and tests, without Docker.
#
#   scripts/kafka.sh start [DIR]   fetch the broker (once), format a KRaft
#                                  single-node log dir in DIR (default: a new
#                                  temp dir), start it on a free loopback
#                                  port, wait until it answers, and print
#                                  `BANDPASS_KAFKA_BROKERS=127.0.0.1:PORT` and
#                                  `BANDPASS_KAFKA_DIR=DIR` for `eval`
#   scripts/kafka.sh stop DIR      stop that broker and remove DIR
#   scripts/kafka.sh down DIR      kill the broker abruptly, keeping DIR
#   scripts/kafka.sh up DIR        start it again (same port, topics, offsets)
#   scripts/kafka.sh fetch         only fetch the jars
#
# BANDPASS_KAFKA_PROPERTIES: more server.properties lines for `start` (the
# soak bounds retention with them).
#
# The broker is org.apache.kafka:kafka_2.13 from Maven Central, fetched with
# Maven (Java 17 runs it) into $BANDPASS_KAFKA_HOME (default
# ~/.cache/bandpass/kafka-$KAFKA_VERSION), outside the checkout, and reused.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.0}"
KAFKA_HOME="${BANDPASS_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bandpass/kafka-$KAFKA_VERSION}"
LIBS="$KAFKA_HOME/libs"
START_TIMEOUT_S="${BANDPASS_KAFKA_START_TIMEOUT:-90}"

say() { echo "kafka.sh: $*" >&2; }

fetch() {
    if [ -f "$LIBS/.complete" ]; then
        return
    fi
    command -v mvn >/dev/null || { say "Maven (mvn) is needed to fetch the broker"; exit 1; }
    command -v java >/dev/null || { say "Java 17 is needed to run the broker"; exit 1; }
    say "fetching Apache Kafka $KAFKA_VERSION and its dependencies with Maven into $LIBS"
    local pom
    pom="$(mktemp -d)"
    cat > "$pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>bandpass</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
EOF
    rm -rf "$LIBS"
    mkdir -p "$LIBS"
    mvn -q -f "$pom/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$LIBS" -DincludeScope=runtime >&2
    rm -rf "$pom"
    touch "$LIBS/.complete"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_java() {
    java -Xms128m -Xmx512m -cp "$LIBS/*" "$@"
}

start() {
    fetch
    local dir="${1:-}"
    if [ -z "$dir" ]; then
        dir="$(mktemp -d -t bandpass-kafka.XXXXXX)"
    fi
    mkdir -p "$dir"
    local port controller
    port="$(free_port)"
    controller="$(free_port)"
    cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
${BANDPASS_KAFKA_PROPERTIES:-}
EOF
    local cluster
    cluster="$(run_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    run_java kafka.tools.StorageTool format -t "$cluster" -c "$dir/server.properties" \
        > "$dir/format.log" 2>&1 || { say "formatting the log dir failed:"; cat "$dir/format.log" >&2; exit 1; }
    up "$dir"
    echo "BANDPASS_KAFKA_BROKERS=127.0.0.1:$port"
    echo "BANDPASS_KAFKA_DIR=$dir"
}

# Starts the broker formatted in DIR and waits until it answers.
up() {
    local dir="$1"
    local port
    port="$(sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:||p' "$dir/server.properties")"
    # setsid: the broker outlives this script, in its own process group.
    setsid java -Xms256m -Xmx1g -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
        >> "$dir/broker.log" 2>&1 < /dev/null &
    echo $! > "$dir/broker.pid"
    local waited=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
        && grep -q "Kafka Server started" "$dir/broker.log"; do
        if ! kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
            say "the broker exited while starting; its log:"
            tail -n 40 "$dir/broker.log" >&2
            exit 1
        fi
        if [ "$waited" -ge "$START_TIMEOUT_S" ]; then
            say "the broker did not answer within ${START_TIMEOUT_S}s; the end of its log:"
            tail -n 40 "$dir/broker.log" >&2
            stop "$dir"
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "broker $KAFKA_VERSION up on 127.0.0.1:$port after ${waited}s (log dir $dir)"
}

# Kills the broker of DIR abruptly (SIGKILL), keeping its data: `up DIR`
# starts it again on the same port with the same topics and offsets.
down() {
    local dir="$1"
    local pid
    pid="$(cat "$dir/broker.pid")"
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    # The next start must wait for its own "started" line.
    : > "$dir/broker.log"
}

stop() {
    local dir="$1"
    if [ -f "$dir/broker.pid" ]; then
        local pid
        pid="$(cat "$dir/broker.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    fetch) fetch ;;
    start) start "${2:-}" ;;
    stop | down | up)
        [ -n "${2:-}" ] || { say "usage: scripts/kafka.sh $1 DIR"; exit 2; }
        if [ "$1" = up ]; then fetch; fi
        "$1" "$2"
        ;;
    *)
        say "usage: scripts/kafka.sh start [DIR] | stop DIR | down DIR | up DIR | fetch"
        exit 2
        ;;
esac
