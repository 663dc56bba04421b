#!/usr/bin/env bash
# Make sure the Redis and RabbitMQ servers the test suite talks to are reachable.
# A missing server on a loopback address is installed (root only, via apt) and
# started. Quick no-op when both already answer. A server still unreachable at
# the end is an error when CI=true and a warning otherwise.
#
#   HURTLE_TEST_REDIS_URL  default redis://127.0.0.1:6379/0
#   HURTLE_TEST_AMQP_URL   default amqp://guest:guest@127.0.0.1:5672/
set -euo pipefail

redis_url=${HURTLE_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
amqp_url=${HURTLE_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}

# Print "HOST PORT" for a URL like scheme://[user:pass@]host[:port][/path].
host_port() {
    local rest=${1#*://}
    rest=${rest%%[/?]*}
    rest=${rest##*@}
    local host port
    if [[ $rest == \[* ]]; then # [::1]:port
        host=${rest%%]*} host=${host#[} port=${rest#*]}
    else
        host=${rest%%:*} port=${rest#"$host"}
    fi
    echo "${host:-127.0.0.1} ${port#:}"
}
read -r redis_host redis_port < <(host_port "$redis_url")
read -r amqp_host amqp_port < <(host_port "$amqp_url")
redis_port=${redis_port:-6379}
amqp_port=${amqp_port:-5672}

# shellcheck disable=SC2016 # $0/$1 expand in the inner bash
tcp_up() { timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

redis_up() {
    tcp_up "$redis_host" "$redis_port" || return 1
    if command -v redis-cli >/dev/null; then
        # NOAUTH: the server is up, it just wants the URL's password first.
        local reply
        reply=$(timeout 2 redis-cli -h "$redis_host" -p "$redis_port" ping 2>&1)
        [[ $reply == PONG || $reply == NOAUTH* ]]
    else
        # shellcheck disable=SC2016
        timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"; printf "PING\r\n" >&3
            IFS= read -r line <&3; [[ $line == +PONG* || $line == -NOAUTH* ]]' \
            "$redis_host" "$redis_port" 2>/dev/null
    fi
}

amqp_up() { tcp_up "$amqp_host" "$amqp_port"; }

is_loopback() { [[ $1 == localhost || $1 == 127.* || $1 == ::1 ]]; }

# apt-get install PKG if CMD is missing and we are root; apt-get update once.
apt_updated=
ensure_cmd() {
    command -v "$1" >/dev/null && return 0
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || return 1
    echo "services.sh: installing $2" >&2
    if [[ -z $apt_updated ]]; then apt-get update -qq && apt_updated=1 || return 1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null || return 1
    command -v "$1" >/dev/null
}

start_redis() {
    is_loopback "$redis_host" && ensure_cmd redis-server redis-server || return 0
    redis_up && return 0 # the package's own service may have just started it
    local bind=$redis_host dir
    [[ $bind == localhost ]] && bind=127.0.0.1
    dir=$(mktemp -d "${TMPDIR:-/tmp}/hurtle-redis.XXXXXX")
    echo "services.sh: starting redis-server on $bind:$redis_port (log: $dir/redis.log)" >&2
    redis-server --daemonize yes --bind "$bind" --port "$redis_port" --save "" \
        --appendonly no --dir "$dir" --logfile "$dir/redis.log" || return 0
    for _ in {1..50}; do redis_up && return 0; sleep 0.2; done
}

start_rabbitmq() (
    is_loopback "$amqp_host" && ensure_cmd rabbitmq-server rabbitmq-server || exit 0
    amqp_up && exit 0 # the package's own service may have just started it
    # Keep the node on loopback: AMQP listener, epmd and Erlang distribution.
    # A node name at localhost lets rabbitmqctl reach a loopback-only node.
    export RABBITMQ_NODE_IP_ADDRESS=${amqp_host/localhost/127.0.0.1}
    export RABBITMQ_NODE_PORT=$amqp_port
    export RABBITMQ_NODENAME=${RABBITMQ_NODENAME:-rabbit@localhost}
    export ERL_EPMD_ADDRESS=${ERL_EPMD_ADDRESS:-127.0.0.1}
    export ERL_FLAGS=${ERL_FLAGS:-"-kernel inet_dist_use_interface {127,0,0,1}"}
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/hurtle-rabbitmq.XXXXXX")
    echo "services.sh: starting rabbitmq-server on $amqp_host:$amqp_port (log: $log)" >&2
    rabbitmq-server -detached >"$log" 2>&1 || exit 0
    local deadline=$((SECONDS + 90))
    while ((SECONDS < deadline)); do
        # The listener opens late in boot; await_startup confirms the node is ready.
        if amqp_up && { ! command -v rabbitmqctl >/dev/null ||
            timeout $((deadline - SECONDS + 1)) rabbitmqctl -q await_startup >>"$log" 2>&1; }; then
            exit 0
        fi
        sleep 1
    done
)

redis_up || start_redis
amqp_up || start_rabbitmq

missing=()
redis_up || missing+=("Redis at $redis_host:$redis_port")
amqp_up || missing+=("RabbitMQ at $amqp_host:$amqp_port")
((${#missing[@]} == 0)) && exit 0
msg=$(printf '%s, ' "${missing[@]}")
msg="${msg%, } not reachable"
if [[ ${CI:-} == true ]]; then
    echo "services.sh: error: $msg (required in CI)" >&2
    exit 1
fi
echo "services.sh: warning: $msg; tests that need it will fail or be skipped" >&2
