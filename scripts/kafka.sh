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
#   scripts/kafka.sh start-secure [DIR]
#                                  `start`, plus a listener that enforces
#                                  SASL_SSL and ACLs (see "Secure mode")
#   scripts/kafka.sh acl DIR ARGS...
#                                  Kafka's AclCommand with ARGS (such as
#                                  --add --allow-principal User:reader
#                                  --operation Write --topic T) against
#                                  the secure broker of DIR
#
# BANDPASS_KAFKA_PROPERTIES: more server.properties lines for `start` (the
# soak bounds retention with them).
#
# Secure mode (`start-secure`), as a survey's public stream is served:
# the same KRaft single node, whose plaintext listener stays the
# administrator's (its anonymous principal is a super user), plus a
# SASL_SSL listener with SCRAM-SHA-512 and a broker certificate (for
# 127.0.0.1 and localhost) signed by a certificate authority made here
# with openssl, in DIR/tls. ACLs are enforced (KRaft's StandardAuthorizer;
# no ACL means no access). Two SCRAM users, with random passwords:
#   operator  every right on every topic, group and transactional id
#   reader    Read and Describe on the topics whose names start with
#             $BANDPASS_KAFKA_READER_TOPICS (default "alerts") and on the
#             groups whose names start with $BANDPASS_KAFKA_READER_GROUPS
#             (default "reader"); nothing else
# It prints, for `eval`: BANDPASS_KAFKA_SECURE_BROKERS (the SASL_SSL
# address), BANDPASS_KAFKA_SECURE_ADMIN (the plaintext one),
# BANDPASS_KAFKA_SECURE_CA (the CA file clients must trust), the users'
# names and passwords, the reader's two prefixes, and
# BANDPASS_KAFKA_SECURE_DIR (for `stop`). The ACLs are written with
# Kafka's own AclCommand (org.apache.kafka:kafka-tools, fetched once into
# $KAFKA_HOME/tools, beside and apart from the broker's jars).
#
# The broker is org.apache.kafka:kafka_2.13 from Maven Central, fetched with
# Maven (Java 17 runs it) into $BANDPASS_KAFKA_HOME (default
# ~/.cache/bandpass/kafka-$KAFKA_VERSION), outside the checkout, and reused.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.0}"
KAFKA_HOME="${BANDPASS_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bandpass/kafka-$KAFKA_VERSION}"
LIBS="$KAFKA_HOME/libs"
TOOLS="$KAFKA_HOME/tools"
START_TIMEOUT_S="${BANDPASS_KAFKA_START_TIMEOUT:-90}"

say() { echo "kafka.sh: $*" >&2; }

fetch() {
    fetch_into "$LIBS" kafka_2.13 broker
}

# Kafka's command-line tools (AclCommand), for `start-secure` only: in a
# folder of their own, so that the broker's classpath stays as it was.
fetch_tools() {
    fetch_into "$TOOLS" kafka-tools "command-line tools"
}

# Fetches org.apache.kafka:ARTIFACT and its runtime dependencies into
# INTO with Maven, once (INTO/.complete says it is done).
fetch_into() {
    local into="$1" artifact="$2" what="$3"
    if [ -f "$into/.complete" ]; then
        return
    fi
    command -v mvn >/dev/null || { say "Maven (mvn) is needed to fetch the $what"; exit 1; }
    command -v java >/dev/null || { say "Java 17 is needed to run the $what"; exit 1; }
    say "fetching Apache Kafka $KAFKA_VERSION ($artifact) and its dependencies with Maven into $into"
    local pom
    pom="$(mktemp -d)"
    cat > "$pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>bandpass</groupId>
  <artifactId>kafka-$artifact</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>$artifact</artifactId>
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
    rm -rf "$into"
    mkdir -p "$into"
    mvn -q -f "$pom/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$into" -DincludeScope=runtime >&2
    rm -rf "$pom"
    touch "$into/.complete"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_java() {
    java -Xms128m -Xmx512m -cp "$LIBS/*" "$@"
}

start() {
    fetch
    local dir port controller
    dir="$(new_dir "${1:-}")"
    port="$(free_port)"
    controller="$(free_port)"
    properties "$dir" "$port" "$controller" "" > "$dir/server.properties"
    format "$dir"
    up "$dir"
    echo "BANDPASS_KAFKA_BROKERS=127.0.0.1:$port"
    echo "BANDPASS_KAFKA_DIR=$dir"
}

# DIR, or a new temp dir when none is given; made if missing.
new_dir() {
    local dir="$1"
    if [ -z "$dir" ]; then
        dir="$(mktemp -d -t bandpass-kafka.XXXXXX)"
    fi
    mkdir -p "$dir"
    echo "$dir"
}

# The server.properties of a single node in DIR: the plaintext listener
# on PORT, the controller on CONTROLLER, and a SASL_SSL listener on
# SECURE when it is not empty (its own settings are start_secure's).
properties() {
    local dir="$1" port="$2" controller="$3" secure="$4"
    local listeners="PLAINTEXT://127.0.0.1:$port" map="PLAINTEXT:PLAINTEXT"
    if [ -n "$secure" ]; then
        listeners="$listeners,SASL_SSL://127.0.0.1:$secure"
        map="$map,SASL_SSL:SASL_SSL"
    fi
    cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=$listeners,CONTROLLER://127.0.0.1:$controller
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$map,CONTROLLER:PLAINTEXT
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
EOF
}

# Formats DIR's log dir from its server.properties (the operator's lines
# from BANDPASS_KAFKA_PROPERTIES added last); more arguments go to the
# format command (start_secure's SCRAM users).
format() {
    local dir="$1"
    shift
    echo "${BANDPASS_KAFKA_PROPERTIES:-}" >> "$dir/server.properties"
    local cluster
    cluster="$(run_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    run_java kafka.tools.StorageTool format -t "$cluster" -c "$dir/server.properties" "$@" \
        > "$dir/format.log" 2>&1 || { say "formatting the log dir failed:"; cat "$dir/format.log" >&2; exit 1; }
}

# `start`, plus the SASL_SSL listener, certificates, users and ACLs of
# the secure mode (see the top of this file).
start_secure() {
    fetch
    fetch_tools
    command -v openssl >/dev/null || { say "openssl is needed to make the test certificates"; exit 1; }
    local dir port controller secure
    dir="$(new_dir "${1:-}")"
    port="$(free_port)"
    controller="$(free_port)"
    secure="$(free_port)"
    local tls="$dir/tls" store_password operator_password reader_password
    store_password="$(openssl rand -hex 16)"
    operator_password="$(openssl rand -hex 16)"
    reader_password="$(openssl rand -hex 16)"
    local topics="${BANDPASS_KAFKA_READER_TOPICS:-alerts}"
    local groups="${BANDPASS_KAFKA_READER_GROUPS:-reader}"
    certificates "$tls" "$store_password"
    {
        properties "$dir" "$port" "$controller" "$secure"
        cat <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$tls/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$store_password
listener.name.sasl_ssl.ssl.key.password=$store_password
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS
EOF
    } > "$dir/server.properties"
    format "$dir" \
        --add-scram "SCRAM-SHA-512=[name=operator,password=$operator_password]" \
        --add-scram "SCRAM-SHA-512=[name=reader,password=$reader_password]"
    up "$dir"
    acl "$dir" "$port" --add --allow-principal User:operator --operation All \
        --topic '*' --group '*' --transactional-id '*' --cluster \
        || { stop "$dir"; exit 1; }
    acl "$dir" "$port" --add --allow-principal User:reader \
        --operation Read --operation Describe --resource-pattern-type prefixed \
        --topic "$topics" --group "$groups" \
        || { stop "$dir"; exit 1; }
    echo "BANDPASS_KAFKA_SECURE_BROKERS=127.0.0.1:$secure"
    echo "BANDPASS_KAFKA_SECURE_ADMIN=127.0.0.1:$port"
    echo "BANDPASS_KAFKA_SECURE_CA=$tls/ca.pem"
    echo "BANDPASS_KAFKA_SECURE_OPERATOR=operator"
    echo "BANDPASS_KAFKA_SECURE_OPERATOR_PASSWORD=$operator_password"
    echo "BANDPASS_KAFKA_SECURE_READER=reader"
    echo "BANDPASS_KAFKA_SECURE_READER_PASSWORD=$reader_password"
    echo "BANDPASS_KAFKA_SECURE_READER_TOPICS=$topics"
    echo "BANDPASS_KAFKA_SECURE_READER_GROUPS=$groups"
    echo "BANDPASS_KAFKA_SECURE_DIR=$dir"
}

# A certificate authority (TLS/ca.pem) and the broker's key and
# certificate for 127.0.0.1 and localhost signed by it, in a PKCS12
# keystore (TLS/broker.p12) locked with PASSWORD.
certificates() {
    local tls="$1" password="$2"
    mkdir -p "$tls"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
            -subj "/CN=bandpass test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$tls/ca.key" -out "$tls/ca.pem"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$tls/broker.key" -out "$tls/broker.csr"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$tls/broker.ext"
        openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
            -CAcreateserial -days 30 -extfile "$tls/broker.ext" -out "$tls/broker.pem"
        openssl pkcs12 -export -in "$tls/broker.pem" -inkey "$tls/broker.key" \
            -certfile "$tls/ca.pem" -name broker -passout "pass:$password" \
            -out "$tls/broker.p12"
    } > "$tls/openssl.log" 2>&1 || {
        say "making the certificates with openssl failed:"
        cat "$tls/openssl.log" >&2
        exit 1
    }
}

# Runs Kafka's AclCommand against DIR's broker through its plaintext
# (super user) listener on PORT; says what went wrong if it fails.
acl() {
    local dir="$1" port="$2"
    shift 2
    java -Xms64m -Xmx256m -cp "$TOOLS/*" org.apache.kafka.tools.AclCommand \
        --bootstrap-server "127.0.0.1:$port" "$@" >> "$dir/acls.log" 2>&1 || {
        say "writing the ACLs failed:"
        tail -n 40 "$dir/acls.log" >&2
        return 1
    }
}

# Starts the broker formatted in DIR and waits until it answers.
up() {
    local dir="$1"
    local port
    port="$(sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\).*|\1|p' "$dir/server.properties")"
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
    start-secure) start_secure "${2:-}" ;;
    acl)
        [ -n "${2:-}" ] || { say "usage: scripts/kafka.sh acl DIR ARGS..."; exit 2; }
        fetch_tools
        dir="$2"
        shift 2
        port="$(sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\).*|\1|p' "$dir/server.properties")"
        acl "$dir" "$port" "$@"
        ;;
    stop | down | up)
        [ -n "${2:-}" ] || { say "usage: scripts/kafka.sh $1 DIR"; exit 2; }
        if [ "$1" = up ]; then fetch; fi
        "$1" "$2"
        ;;
    *)
        say "usage: scripts/kafka.sh start [DIR] | start-secure [DIR] | acl DIR ARGS... | stop DIR | down DIR | up DIR | fetch"
        exit 2
        ;;
esac
