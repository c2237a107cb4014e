#!/usr/bin/env bash
# testenv.sh — the real services streamprofile's integration tests run against.
#
#   scripts/testenv.sh up              start (or reuse) Kafka, Redis and a Redis Cluster; wait until ready
#   scripts/testenv.sh down            stop everything `up` started (only that); safe to repeat
#   scripts/testenv.sh status          show each service, its address and whether it is running
#   scripts/testenv.sh env             print the `export ...` lines tests need (eval "$(scripts/testenv.sh env)")
#   scripts/testenv.sh stop-kafka [--kill]    stop the broker, keep its data and port (SIGTERM; --kill: SIGKILL)
#   scripts/testenv.sh start-kafka            start the stopped broker again on the same port and data; wait ready
#   scripts/testenv.sh restart-kafka [--kill] stop-kafka then start-kafka
#   scripts/testenv.sh stop-redis [--kill] / start-redis / restart-redis [--kill]
#                                             the same for the standalone redis-server (appendonly yes)
#
# Services (all on 127.0.0.1, free ports chosen at `up`, starting from the defaults):
#   Kafka 4.1.1, KRaft combined broker+controller, run from jars fetched by Maven (scripts/kafka/pom.xml)
#   redis-server, standalone, appendonly yes, no RDB snapshots
#   Redis Cluster of 3 masters (no replicas)
#
# Environment:
#   STREAMPROFILE_TESTENV_DIR        state and cache folder (default: <repo>/.testenv)
#   STREAMPROFILE_TESTENV_KAFKA_PORT first Kafka listener port tried (default 19092; controller: next free)
#   STREAMPROFILE_TESTENV_REDIS_PORT first standalone Redis port tried (default 16379)
#   STREAMPROFILE_TESTENV_CLUSTER_PORT first Redis Cluster port tried (default 17000; bus ports are +10000)
#   STREAMPROFILE_TESTENV_TIMEOUT    seconds to wait for each service to become ready (default 300)
#   STREAMPROFILE_TESTENV_KAFKA_JVM_OPTS JVM options of the broker (default below, see default_kafka_jvm_opts)
#
# Layout of the state folder:
#   kafka-<version>-<pom hash>/libs/  Kafka jars (cache; kept by `down`)
#   bin/testenvprobe        readiness/port probe built from internal/testenv/cmd/testenvprobe
#   run/                    live state: env file, pid files, data, logs (removed by `down`)
#   logs/                   logs of the last environment, copied there by `down`
set -euo pipefail

script_path="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
repo="$(cd "$(dirname "$script_path")/.." && pwd)"
dir="${STREAMPROFILE_TESTENV_DIR:-$repo/.testenv}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
run="$dir/run"
pom="$repo/scripts/kafka/pom.xml"
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
# The jar cache is keyed by the pom's content, so any change to it fetches again.
libs="$dir/kafka-$kafka_version-$(sha256sum "$pom" | cut -c1-12)/libs"
probe="$dir/bin/testenvprobe"
timeout_s="${STREAMPROFILE_TESTENV_TIMEOUT:-300}"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() {
	printf 'testenv: error: %s\n' "$*" >&2
	exit 1
}

# tail_log FILE... prints the last lines of each existing log file to stderr.
tail_log() {
	local f
	for f in "$@"; do
		[[ -s "$f" ]] || continue
		printf -- '---- last lines of %s ----\n' "$f" >&2
		tail -n 40 "$f" >&2 || true
	done
}

# ---------------------------------------------------------------- processes

# proc_start_time PID prints the kernel start time of PID (field 22 of /proc/PID/stat).
proc_start_time() {
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	# The command name (field 2) may hold spaces; fields after the last ')' start at field 3.
	stat="${stat##*) }"
	# shellcheck disable=SC2086
	set -- $stat
	printf '%s\n' "${20}"
}

# write_pid FILE PID records PID together with its start time, so a recycled PID is never mistaken
# for ours. A process that has exited already is recorded as such (start time 0).
write_pid() {
	local st
	st="$(proc_start_time "$2")" || st=0
	printf '%s %s\n' "$2" "$st" >"$1"
}

# pid_alive FILE prints the recorded PID and succeeds when that very process is still running.
pid_alive() {
	local pid st cur state
	[[ -f "$1" ]] || return 1
	read -r pid st <"$1" || return 1
	[[ -n "${pid:-}" && -n "${st:-}" ]] || return 1
	cur="$(proc_start_time "$pid")" || return 1
	[[ "$cur" == "$st" ]] || return 1
	state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
	[[ "$state" != Z && "$state" != X ]] || return 1
	printf '%s\n' "$pid"
}

# spawn PIDFILE LOGFILE CMD... starts CMD as a daemon in its own session (no controlling terminal,
# no inherited lock descriptor), output appended to LOGFILE, and records its PID in PIDFILE.
spawn() {
	local pidfile="$1" logfile="$2"
	shift 2
	rm -f "$pidfile.new"
	# shellcheck disable=SC2016 # $$ and $@ belong to the inner bash.
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile.new" "$@" </dev/null >>"$logfile" 2>&1 9>&- &
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s "$pidfile.new" ]] && break
		sleep 0.05
	done
	[[ -s "$pidfile.new" ]] || die "could not start $1 (no pid after 5s; see $logfile)"
	write_pid "$pidfile" "$(cat "$pidfile.new")"
	rm -f "$pidfile.new"
}

# stop_pid FILE NAME SIGNAL GRACE stops the recorded process: SIGNAL, then SIGKILL after GRACE seconds.
stop_pid() {
	local file="$1" name="$2" sig="$3" grace="$4" pid i
	if ! pid="$(pid_alive "$file")"; then
		rm -f "$file"
		return 0
	fi
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		pid_alive "$file" >/dev/null || break
		sleep 0.1
	done
	if pid_alive "$file" >/dev/null; then
		log "$name (pid $pid) still running ${grace}s after SIG$sig; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			pid_alive "$file" >/dev/null || break
			sleep 0.1
		done
	fi
	pid_alive "$file" >/dev/null && die "could not stop $name (pid $pid)"
	rm -f "$file"
	log "stopped $name (pid $pid)"
}

# ---------------------------------------------------------------- ports

# port_free PORT... succeeds when every PORT can be bound on 127.0.0.1 now.
port_free() { "$probe" free "$@"; }

# pick_port START [TAKEN...] prints the first port >= START that is free and not in TAKEN.
pick_port() {
	local start="$1" p t ok
	shift
	for ((p = start; p <= 65000; p++)); do
		ok=1
		for t in "$@"; do [[ "$t" == "$p" ]] && ok=0; done
		((ok)) || continue
		if port_free "$p"; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	die "no free port found from $start"
}

# pick_cluster_ports START prints 3 ports p with p and p+10000 (the cluster bus) free.
pick_cluster_ports() {
	local p="$1" got=()
	while ((${#got[@]} < 3)); do
		((p > 55000)) && die "no free Redis Cluster ports found from $1"
		if port_free "$p" "$((p + 10000))"; then
			got+=("$p")
		fi
		p=$((p + 1))
	done
	printf '%s\n' "${got[@]}"
}

# ---------------------------------------------------------------- prerequisites

# apt_install PKG installs a Debian package with apt-get (as root, or with sudo),
# running apt-get update and trying again when the first attempt fails.
apt_install() {
	local pkg=$1 sudo=()
	if [[ "$(id -u)" != 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "$pkg is missing and this user is not root and has no sudo"
		sudo=(sudo)
	fi
	command -v apt-get >/dev/null 2>&1 || die "$pkg is missing and there is no apt-get to install it with"
	export DEBIAN_FRONTEND=noninteractive
	if ! "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q "$pkg" >"$dir/apt.log" 2>&1; then
		log "apt-get install $pkg failed; running apt-get update and trying again"
		"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q >>"$dir/apt.log" 2>&1 || {
			tail_log "$dir/apt.log"
			die "apt-get update failed"
		}
		"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q "$pkg" >>"$dir/apt.log" 2>&1 || {
			tail_log "$dir/apt.log"
			die "apt-get install -y $pkg failed"
		}
	fi
}

ensure_redis_installed() {
	if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
		return 0
	fi
	log "redis-server not found; installing Debian's redis-server with apt-get"
	apt_install redis-server
	command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after apt-get install"
	log "installed $(redis-server --version | head -n 1)"
}

# ensure_maven_installed installs Debian's maven when mvn is missing (Java 17
# is expected to be installed; Debian's maven would pull a JDK in otherwise).
ensure_maven_installed() {
	command -v mvn >/dev/null 2>&1 && return 0
	log "mvn not found; installing Debian's maven with apt-get"
	apt_install maven
	command -v mvn >/dev/null 2>&1 || die "mvn still not on PATH after apt-get install maven"
}

ensure_kafka_jars() {
	if [[ -f "$libs/.complete" ]]; then
		return 0
	fi
	ensure_maven_installed
	command -v java >/dev/null 2>&1 || die "java (17+) is needed to run Kafka"
	log "fetching Kafka $kafka_version jars with Maven into $libs"
	rm -rf "$libs"
	mkdir -p "$libs"
	if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$libs" >"$dir/mvn.log" 2>&1; then
		tail_log "$dir/mvn.log"
		die "Maven could not fetch the Kafka jars (scripts/kafka/pom.xml)"
	fi
	ls "$libs"/kafka_2.13-"$kafka_version".jar >/dev/null 2>&1 || die "Maven ran but kafka_2.13-$kafka_version.jar is missing in $libs"
	touch "$libs/.complete"
}

ensure_probe() {
	command -v go >/dev/null 2>&1 || die "go is needed to build the readiness probe"
	mkdir -p "$dir/bin"
	if ! (cd "$repo" && go build -o "$probe" ./internal/testenv/cmd/testenvprobe) >"$dir/probe-build.log" 2>&1; then
		tail_log "$dir/probe-build.log"
		die "could not build internal/testenv/cmd/testenvprobe"
	fi
}

# ---------------------------------------------------------------- Kafka

kafka_dir="$run/kafka"
# C1 only and the serial collector: half the CPU to start (measured 2.5 s vs 5.4 s with C2 and G1)
# and less when idle; a test broker's throughput needs neither C2 nor G1.
default_kafka_jvm_opts="-Xms256m -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1"

write_kafka_config() {
	local port="$1" cport="$2"
	mkdir -p "$kafka_dir/data"
	cat >"$kafka_dir/server.properties" <<EOF
# Written by scripts/testenv.sh: single-node KRaft broker+controller for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$kafka_dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.check.interval.ms=60000
EOF
	printf '%s %s\n' "$port" "$cport" >"$kafka_dir/ports"
}

# kafka_jvm sets the array kafka_cmd (declared local by the caller) to the JVM command line for "$@".
kafka_jvm() {
	local opts
	read -r -a opts <<<"${STREAMPROFILE_TESTENV_KAFKA_JVM_OPTS:-$default_kafka_jvm_opts}"
	kafka_cmd=(java "${opts[@]}" -Djava.awt.headless=true
		-Dlog4j2.configurationFile="$repo/scripts/kafka/log4j2.xml"
		-Dkafka.log.file="$kafka_dir/broker.log"
		-cp "$libs/*" "$@")
}

kafka_java() {
	local kafka_cmd
	kafka_jvm "$@"
	"${kafka_cmd[@]}" 9>&-
}

# new_cluster_id prints a Kafka cluster id: 16 random bytes in unpadded base64url, not starting
# with '-' (what `kafka-storage.sh random-uuid` prints, without starting a JVM for it).
new_cluster_id() {
	local id
	while :; do
		id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
		[[ "$id" != -* && ${#id} == 22 ]] && break
	done
	printf '%s\n' "$id"
}

format_kafka() {
	if ! kafka_java kafka.tools.StorageTool format -t "$(new_cluster_id)" -c "$kafka_dir/server.properties" \
		>>"$kafka_dir/format.log" 2>&1; then
		tail_log "$kafka_dir/format.log"
		die "kafka StorageTool format failed"
	fi
}

# launch_kafka starts the broker process from the existing config and data (no wait).
launch_kafka() {
	local port cport
	read -r port cport <"$kafka_dir/ports"
	port_free "$port" "$cport" || die "Kafka ports $port/$cport are in use by another process; run '$0 down' and '$0 up' to pick new ones"
	local kafka_cmd
	kafka_jvm kafka.Kafka "$kafka_dir/server.properties"
	spawn "$kafka_dir/pid" "$kafka_dir/stdout.log" "${kafka_cmd[@]}"
	log "started Kafka broker (pid $(pid_alive "$kafka_dir/pid" || echo exited)) on 127.0.0.1:$port (controller $cport)"
}

wait_kafka() {
	local port cport pid rc=0
	read -r port cport <"$kafka_dir/ports"
	pid="$(pid_alive "$kafka_dir/pid")" || {
		tail_log "$kafka_dir/stdout.log" "$kafka_dir/broker.log"
		die "Kafka broker is not running"
	}
	"$probe" kafka -timeout "${timeout_s}s" -pid "$pid" "127.0.0.1:$port" 2>"$kafka_dir/probe.log" || rc=$?
	if ((rc != 0)); then
		cat "$kafka_dir/probe.log" >&2
		tail_log "$kafka_dir/stdout.log" "$kafka_dir/broker.log"
		if ((rc == 2)); then
			die "Kafka broker (pid $pid) exited during startup"
		fi
		die "Kafka broker on 127.0.0.1:$port not ready within ${timeout_s}s"
	fi
	log "Kafka ready on 127.0.0.1:$port"
}

# kafka_up starts the broker unless it runs already (first time: pick ports and format storage).
kafka_up() {
	if pid_alive "$kafka_dir/pid" >/dev/null; then
		return 0
	fi
	if [[ ! -f "$kafka_dir/ports" || ! -f "$kafka_dir/data/meta.properties" ]]; then
		rm -rf "$kafka_dir"
		mkdir -p "$kafka_dir"
		local port cport
		port="$(pick_port "${STREAMPROFILE_TESTENV_KAFKA_PORT:-19092}")"
		cport="$(pick_port "$((port + 1))" "$port")"
		write_kafka_config "$port" "$cport"
		format_kafka
	fi
	launch_kafka
}

# ---------------------------------------------------------------- Redis

redis_dir="$run/redis"
cluster_dir="$run/cluster"

# launch_redis DIR PORT [extra redis-server args...] starts redis-server with its state in DIR.
launch_redis() {
	local d="$1" port="$2"
	shift 2
	mkdir -p "$d"
	port_free "$port" || die "port $port for redis-server is in use by another process; run '$0 down' and '$0 up' to pick new ones"
	spawn "$d/pid" "$d/stdout.log" redis-server --bind 127.0.0.1 --port "$port" --dir "$d" --daemonize no \
		--save '' --logfile "$d/redis.log" --protected-mode no "$@"
}

# wait_redis DIR PORT waits until redis-server answers PING.
wait_redis() {
	local d="$1" port="$2" deadline=$((SECONDS + timeout_s))
	while ((SECONDS < deadline)); do
		pid_alive "$d/pid" >/dev/null || {
			tail_log "$d/redis.log" "$d/stdout.log"
			die "redis-server on port $port exited during startup"
		}
		[[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]] && return 0
		sleep 0.1
	done
	tail_log "$d/redis.log" "$d/stdout.log"
	die "redis-server on 127.0.0.1:$port did not answer PING within ${timeout_s}s"
}

redis_up() {
	if pid_alive "$redis_dir/pid" >/dev/null; then
		return 0
	fi
	local port
	if [[ -f "$redis_dir/port" ]]; then
		port="$(cat "$redis_dir/port")"
	else
		mkdir -p "$redis_dir"
		port="$(pick_port "${STREAMPROFILE_TESTENV_REDIS_PORT:-16379}")"
		echo "$port" >"$redis_dir/port"
	fi
	# 256 databases so internal/testenv can give each test its own.
	launch_redis "$redis_dir" "$port" --appendonly yes --databases 256
	log "started redis-server (pid $(pid_alive "$redis_dir/pid" || echo exited)) on 127.0.0.1:$port"
}

wait_redis_standalone() {
	wait_redis "$redis_dir" "$(cat "$redis_dir/port")"
	log "Redis ready on 127.0.0.1:$(cat "$redis_dir/port")"
}

cluster_up() {
	local ports=() p i
	if [[ -f "$cluster_dir/ports" ]]; then
		read -r -a ports <"$cluster_dir/ports"
	else
		mkdir -p "$cluster_dir"
		mapfile -t ports < <(pick_cluster_ports "${STREAMPROFILE_TESTENV_CLUSTER_PORT:-17000}")
		echo "${ports[*]}" >"$cluster_dir/ports"
	fi
	for i in 0 1 2; do
		p="${ports[$i]}"
		pid_alive "$cluster_dir/node$i/pid" >/dev/null && continue
		launch_redis "$cluster_dir/node$i" "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
			--cluster-node-timeout 5000 --appendonly no
		log "started Redis Cluster node $i (pid $(pid_alive "$cluster_dir/node$i/pid" || echo exited)) on 127.0.0.1:$p"
	done
}

wait_cluster() {
	local ports=() addrs=() p i deadline=$((SECONDS + timeout_s)) ok
	read -r -a ports <"$cluster_dir/ports"
	for i in 0 1 2; do
		wait_redis "$cluster_dir/node$i" "${ports[$i]}"
		addrs+=("127.0.0.1:${ports[$i]}")
	done
	if [[ "$(redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info | tr -d '\r' | awk -F: '$1=="cluster_slots_assigned"{print $2}')" != 16384 ]]; then
		if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$cluster_dir/create.log" 2>&1; then
			tail_log "$cluster_dir/create.log"
			die "redis-cli --cluster create failed"
		fi
	fi
	while ((SECONDS < deadline)); do
		ok=1
		for p in "${ports[@]}"; do
			redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null | tr -d '\r' | grep -x 'cluster_state:ok' >/dev/null || ok=0
		done
		if ((ok)); then
			log "Redis Cluster ready on ${addrs[*]}"
			return 0
		fi
		sleep 0.2
	done
	for i in 0 1 2; do
		redis-cli -h 127.0.0.1 -p "${ports[$i]}" cluster info >&2 || true
		tail_log "$cluster_dir/node$i/redis.log"
	done
	tail_log "$cluster_dir/create.log"
	die "Redis Cluster did not reach cluster_state:ok within ${timeout_s}s"
}

# ---------------------------------------------------------------- env file

write_env() {
	local kport cport rport cports=() c=""
	read -r kport cport <"$kafka_dir/ports"
	rport="$(cat "$redis_dir/port")"
	read -r -a cports <"$cluster_dir/ports"
	c="127.0.0.1:${cports[0]},127.0.0.1:${cports[1]},127.0.0.1:${cports[2]}"
	cat >"$run/env.tmp" <<EOF
export STREAMPROFILE_TESTENV_DIR='$dir'
export STREAMPROFILE_TESTENV_SCRIPT='$script_path'
export STREAMPROFILE_TEST_KAFKA=127.0.0.1:$kport
export STREAMPROFILE_TEST_REDIS=127.0.0.1:$rport
export STREAMPROFILE_TEST_REDIS_CLUSTER=$c
EOF
	mv "$run/env.tmp" "$run/env"
}

# ---------------------------------------------------------------- commands

# with_lock runs "$@" holding the state folder's lock, so concurrent invocations do not race.
with_lock() {
	exec 9>"$dir/.lock"
	if ! flock -w "$((timeout_s + 120))" 9; then
		die "another scripts/testenv.sh holds $dir/.lock"
	fi
	"$@"
}

cmd_up() {
	local t0=$SECONDS t1 t2 t3
	mkdir -p "$run"
	ensure_redis_installed
	t1=$SECONDS
	ensure_kafka_jars
	t2=$SECONDS
	ensure_probe
	t3=$SECONDS
	kafka_up
	redis_up
	cluster_up
	wait_redis_standalone
	wait_cluster
	wait_kafka
	write_env
	log "up in $((SECONDS - t0))s (redis install $((t1 - t0))s, kafka jars $((t2 - t1))s, probe build $((t3 - t2))s, start and readiness $((SECONDS - t3))s)"
	log "state in $run; eval \"\$($0 env)\" exports the test variables"
}

cmd_down() {
	local i
	if [[ ! -d "$run" ]]; then
		log "nothing to stop"
		return 0
	fi
	stop_pid "$kafka_dir/pid" "Kafka broker" TERM 60
	stop_pid "$redis_dir/pid" "redis-server" TERM 20
	for i in 0 1 2; do
		stop_pid "$cluster_dir/node$i/pid" "Redis Cluster node $i" TERM 20
	done
	rm -rf "$dir/logs"
	mkdir -p "$dir/logs"
	(cd "$run" && find . -name '*.log' -print0 | xargs -0 -r cp --parents -t "$dir/logs") || true
	rm -rf "$run"
	log "down; logs of this environment kept in $dir/logs"
}

service_line() {
	local name="$1" pidfile="$2" addr="$3" pid
	if pid="$(pid_alive "$pidfile")"; then
		printf '%-22s %-22s running (pid %s)\n' "$name" "$addr" "$pid"
	else
		printf '%-22s %-22s stopped\n' "$name" "$addr"
		return 1
	fi
}

cmd_status() {
	local rc=0 kport cport ports=() i
	if [[ ! -f "$kafka_dir/ports" && ! -f "$redis_dir/port" && ! -f "$cluster_dir/ports" ]]; then
		echo "testenv: not up (state folder $dir)"
		return 3
	fi
	if [[ -f "$kafka_dir/ports" ]]; then
		read -r kport cport <"$kafka_dir/ports"
		service_line kafka "$kafka_dir/pid" "127.0.0.1:$kport" || rc=1
	fi
	if [[ -f "$redis_dir/port" ]]; then
		service_line redis "$redis_dir/pid" "127.0.0.1:$(cat "$redis_dir/port")" || rc=1
	fi
	if [[ -f "$cluster_dir/ports" ]]; then
		read -r -a ports <"$cluster_dir/ports"
		for i in 0 1 2; do
			service_line "redis-cluster node$i" "$cluster_dir/node$i/pid" "127.0.0.1:${ports[$i]}" || rc=1
		done
	fi
	return "$rc"
}

cmd_env() {
	[[ -f "$run/env" ]] || die "the test environment is not up; run scripts/testenv.sh up"
	cat "$run/env"
}

# parse_kill [--kill] prints the signal a stop command sends.
parse_kill() {
	case "${1:-}" in
	"") echo TERM ;;
	--kill) echo KILL ;;
	*) die "unknown option $1 (want --kill)" ;;
	esac
}

require_up() {
	[[ -f "$run/env" ]] || die "the test environment is not up; run scripts/testenv.sh up"
}

cmd_stop_kafka() {
	require_up
	stop_pid "$kafka_dir/pid" "Kafka broker" "$(parse_kill "$@")" 60
}

cmd_start_kafka() {
	require_up
	[[ -x "$probe" ]] || ensure_probe
	pid_alive "$kafka_dir/pid" >/dev/null || launch_kafka
	wait_kafka
}

cmd_stop_redis() {
	require_up
	stop_pid "$redis_dir/pid" "redis-server" "$(parse_kill "$@")" 20
}

cmd_start_redis() {
	require_up
	ensure_redis_installed
	[[ -x "$probe" ]] || ensure_probe
	if ! pid_alive "$redis_dir/pid" >/dev/null; then
		launch_redis "$redis_dir" "$(cat "$redis_dir/port")" --appendonly yes --databases 256
		log "started redis-server (pid $(pid_alive "$redis_dir/pid" || echo exited)) on 127.0.0.1:$(cat "$redis_dir/port")"
	fi
	wait_redis_standalone
}

usage() {
	sed -n '2,13p' "$script_path" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	local cmd="${1:-}"
	shift || true
	case "$cmd" in
	up) with_lock cmd_up ;;
	down) with_lock cmd_down ;;
	status) cmd_status ;;
	env) cmd_env ;;
	stop-kafka) with_lock cmd_stop_kafka "$@" ;;
	start-kafka) with_lock cmd_start_kafka ;;
	restart-kafka) with_lock cmd_stop_kafka "$@" && with_lock cmd_start_kafka ;;
	stop-redis) with_lock cmd_stop_redis "$@" ;;
	start-redis) with_lock cmd_start_redis ;;
	restart-redis) with_lock cmd_stop_redis "$@" && with_lock cmd_start_redis ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
