# shellcheck shell=bash disable=SC2034 # the settings are used by the other files
# Common settings and helpers for scripts/testbed (sourced, not run).

# One bed per netns; DANE_TESTBED_NETNS + DANE_TESTBED_DIR allow a second, independent bed.
NS=${DANE_TESTBED_NETNS:-dane-testbed}
B=${DANE_TESTBED_DIR:-/tmp/dane-testbed}
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TBD=$REPO/scripts/testbed.d
SCENARIOS=$REPO/testdata/testbed/scenarios.tsv
X=(ip netns exec "$NS")

# Generated state (wiped by every "up"); the RSA key cache survives (see pki.sh).
PKI=$B/pki
Z=$B/dns/zones
K=$B/dns/keys
FRAG=$B/frag
KEYCACHE=${DANE_TESTBED_KEYCACHE:-$B/cache/keys}

# ---- address plan (everything lives on the namespace's lo) -------------------------------
# Authoritative servers and the resolver: 198.51.100.0/24 and 2001:db8:53::/64.
KNOT4=198.51.100.1     KNOT6=2001:db8:53::1    # knotd: ., example., some scenario zones
NSDA4=198.51.100.2     NSDA6=2001:db8:53::2    # nsd-a
NSDB4=198.51.100.3     NSDB6=2001:db8:53::3    # nsd-b
REFUSE4=198.51.100.5   REFUSE6=2001:db8:53::5  # dnsdist -> nsd-a, TLSA answered REFUSED
DROP1_4=198.51.100.6   DROP1_6=2001:db8:53::6  # nsd-a; nft drops TLSA queries (v4 and v6)
DROP2_4=198.51.100.7   DROP2_6=2001:db8:53::7  # nsd-b; nft drops TLSA queries (v4 and v6)
DROP6_4=198.51.100.8   DROP6_6=2001:db8:53::8  # nsd-b; nft drops TLSA queries on IPv6 only
CLOSED4=198.51.100.9   CLOSED6=2001:db8:53::9  # nothing listens: ICMP port unreachable
DEAD4=198.51.100.10    DEAD6=2001:db8:53::10   # nft drops every packet: silence
NSDS4=198.51.100.11    NSDS6=2001:db8:53::11   # nsd-s: secondary of the update zone (update.sh)
DROPK4=198.51.100.12   DROPK6=2001:db8:53::12  # nsd-b; nft drops DNSKEY queries (v4 and v6)
NOTCP4=198.51.100.13   NOTCP6=2001:db8:53::13  # nsd-b; nft refuses TCP to port 53 (v4 and v6)
RES4=198.51.100.53     RES6=2001:db8:53::53    # unbound (validating, the netns resolv.conf)
# SMTP: Postfix on 192.0.2.N / 2001:db8:25::N, smtp_peer on 203.0.113.N / 2001:db8:26::N.
v4() { echo "192.0.2.$1"; }
v6() { echo "2001:db8:25::$1"; }
p4() { echo "203.0.113.$1"; }
p6() { echo "2001:db8:26::$1"; }

# ---- small helpers -----------------------------------------------------------------------
ts() { date +%s%N; }
ms() { echo $((($(ts) - $1) / 1000000)); }
say() { printf '%s\n' "$*"; }
warn() { printf 'testbed: %s\n' "$*" >&2; }
die() { warn "$*"; exit 1; }
step() { # name start-ts: print one timing line
  printf '  %-44s %6d ms\n' "$1" "$(ms "$2")"
}
# A process is alive if it exists and is not a zombie (orphans may be reaped lazily here).
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]
}
pid_of() { [ -s "$1" ] && tr -dc '0-9' <"$1"; }
netns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS"; }

# Run up to $JOBS functions in parallel: "par fn args..."; "par_wait" waits for those jobs
# only (not for other background work) and dies if one of them failed.
JOBS=${DANE_TESTBED_JOBS:-$(($(nproc) * 2))}
PAR_PIDS=() PAR_RUNNING=()
running() { local st; { read -r _ _ st _ <"/proc/$1/stat"; } 2>/dev/null && [ "$st" != Z ]; } # no fork
par() {
  local p still
  while :; do
    still=()
    for p in "${PAR_RUNNING[@]}"; do running "$p" && still+=("$p"); done
    PAR_RUNNING=("${still[@]}")
    [ "${#PAR_RUNNING[@]}" -lt "$JOBS" ] && break
    sleep 0.01
  done
  "$@" &
  PAR_PIDS+=($!)
  PAR_RUNNING+=($!)
}
par_wait() {
  local p fail=0
  for p in "${PAR_PIDS[@]}"; do wait "$p" || fail=1; done
  PAR_PIDS=() PAR_RUNNING=()
  [ "$fail" = 0 ] || die "a parallel build step failed (see messages above)"
}

# Wait until a DNS server answers NOERROR (optionally with AD) for NAME TYPE.
wait_dns() { # addr name type [rd|ad] [tries]
  local a=$1 n=$2 t=$3 mode=${4:-norec} i out
  for ((i = 0; i < ${5:-250}; i++)); do
    case $mode in
      norec) out=$("${X[@]}" dig @"$a" +norec +time=1 +tries=1 "$n" "$t" 2>/dev/null) ;;
      *) out=$("${X[@]}" dig @"$a" +dnssec +time=2 +tries=1 "$n" "$t" 2>/dev/null) ;;
    esac
    if grep -q 'status: NOERROR' <<<"$out"; then
      [ "$mode" != ad ] && return 0
      grep -qE 'flags:[a-z ]* ad[ ;]' <<<"$out" && return 0
    fi
    sleep 0.02
  done
  warn "DNS server $a does not answer $n $t ($mode)"
  return 1
}
