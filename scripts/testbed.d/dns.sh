# shellcheck shell=bash
# DNS: zone-building helpers used by scenarios.sh, the root and TLD zones, and the
# authoritative servers (knotd, 2x nsd, dnsdist) plus the validating resolver (unbound).

TLD=example
ZSERIAL=$(date -u +%Y%m%d01)

# NS tokens used in scenarios: token -> NS host name (all in the example. zone)
ns_host() {
  case $1 in
    knot) echo ns-knot.$TLD. ;; a) echo ns-a.$TLD. ;; b) echo ns-b.$TLD. ;;
    refuse) echo ns-refuse.$TLD. ;; drop1) echo ns-drop1.$TLD. ;; drop2) echo ns-drop2.$TLD. ;;
    drop6) echo ns-drop6.$TLD. ;; closed) echo ns-closed.$TLD. ;; dead) echo ns-dead.$TLD. ;;
    dropk) echo ns-dropk.$TLD. ;; notcp) echo ns-notcp.$TLD. ;;
    *) die "unknown NS token $1" ;;
  esac
}
# token -> the daemon that must hold the zone for that NS name to answer
ns_daemon() {
  case $1 in
    knot) echo knot ;; a | refuse | drop1) echo nsd-a ;; b | drop2 | drop6 | dropk | notcp) echo nsd-b ;;
    closed | dead) echo "" ;;
  esac
}

# ---- zone building (state: ZN zone name, ZF source file, ZNS tokens) --------------------
# zone NAME "TOKENS" [nodelegate]: start a new zone file with SOA and NS records; unless
# "nodelegate", the NS records also go into the example. zone (see build_tld).
zone() {
  ZN=$1 ZNS=$2 ZF=$Z/$1.zone
  local t first=""
  for t in $ZNS; do first=${first:-$(ns_host "$t")}; done
  {
    # shellcheck disable=SC2016 # $ORIGIN and $TTL are zone-file directives
    printf '$ORIGIN %s.\n$TTL 300\n' "$ZN"
    printf '@ SOA %s hostmaster.%s. %s 300 60 86400 60\n' "$first" "$ZN" "${SERIAL:-$ZSERIAL}"
    for t in $ZNS; do printf '@ NS %s\n' "$(ns_host "$t")"; done
  } >"$ZF"
  if [ "${3:-}" != nodelegate ]; then
    for t in $ZNS; do printf '%s. NS %s\n' "$ZN" "$(ns_host "$t")"; done >"$FRAG/$ZN.deleg"
  fi
}
rr() { printf '%s\n' "$@" >>"$ZF"; }
# tlsa OWNER "U S M HEX" ...: TLSA records at _25._tcp.OWNER (OWNER relative, @ = apex)
tlsa() {
  local o=$1 r
  shift
  [ "$o" = @ ] && o="" || o=".$o"
  for r in "$@"; do
    [[ $r =~ ^[0-9]+\ [0-9]+\ [0-9]+\ [0-9a-fA-F]{40,}$ ]] || die "bad TLSA record for $o in $ZN: '$r'"
    rr "_25._tcp$o TLSA $r"
  done
}

# sign [extra dnssec-signzone args]: IN (default $ZF) -> OUT (default $Z/$ZN.signed).
# Keys (ECDSAP256SHA256 KSK + ZSK; ALG= another algorithm, KEYBITS= an RSA key size) are
# made on the first call for a zone; NSEC3=1 signs with NSEC3 (no salt, 0 extra
# iterations, RFC 9276). The DS goes to the zone's .deleg (DSDIGEST=1: a SHA-1 DS only).
sign() {
  local kd=$K/$ZN in=${IN:-$ZF} out=${OUT:-$Z/$ZN.signed} n3=() bits=()
  [ -n "${KEYBITS:-}" ] && bits=(-b "$KEYBITS")
  if [ ! -d "$kd" ]; then
    mkdir -p "$kd"
    # (deprecated algorithms make dnssec-keygen warn on stderr: that is the point)
    dnssec-keygen -q -K "$kd" -a "${ALG:-ECDSAP256SHA256}" "${bits[@]}" -f KSK "$ZN." >/dev/null 2>"$kd/keygen.log" ||
      { cat "$kd/keygen.log" >&2; die "dnssec-keygen $ZN"; }
    dnssec-keygen -q -K "$kd" -a "${ALG:-ECDSAP256SHA256}" "${bits[@]}" "$ZN." >/dev/null 2>>"$kd/keygen.log" ||
      { cat "$kd/keygen.log" >&2; die "dnssec-keygen $ZN"; }
  fi
  [ -n "${NSEC3:-}" ] && n3=(-3 "${N3SALT:--}" -H "${N3ITER:-0}")
  dnssec-signzone -q -O full -S -K "$kd" -d "$kd" "${n3[@]}" "$@" -o "$ZN." -f "$out" "$in" >/dev/null 2>"$kd/sign.log" ||
    { cat "$kd/sign.log" >&2; die "dnssec-signzone $ZN failed"; }
  if [ -f "$FRAG/$ZN.deleg" ] && ! grep -q ' DS ' "$FRAG/$ZN.deleg"; then
    if [ -n "${DSDIGEST:-}" ]; then
      dnssec-dsfromkey "-$DSDIGEST" "$(grep -l 'DNSKEY[[:space:]]*257 ' "$kd"/K*.key)" >>"$FRAG/$ZN.deleg" 2>>"$kd/keygen.log" ||
        die "dnssec-dsfromkey $ZN"
    else
      cat "$kd/dsset-$ZN." >>"$FRAG/$ZN.deleg"
    fi
  fi
}
# A DS for a zone that is never served (delegation to dead servers): keys, no zone file.
ds_only() {
  local kd=$K/$ZN
  mkdir -p "$kd"
  dnssec-keygen -q -K "$kd" -a ECDSAP256SHA256 -f KSK "$ZN." >/dev/null || die "dnssec-keygen $ZN"
  dnssec-dsfromkey -2 "$(grep -l 'DNSKEY[[:space:]]*257 ' "$kd"/K*.key)" >>"$FRAG/$ZN.deleg"
}

# tamper FILE ERE SED-SUBST: edit exactly the lines matching ERE after signing (their
# RRSIGs no longer verify). Dies if nothing changed, so a fault can never silently vanish.
tamper() {
  local f=$1 re=$2 sub=$3 before
  before=$(md5sum <"$f")
  sed -i -E "/$re/$sub" "$f"
  [ "$(md5sum <"$f")" != "$before" ] || die "tamper: no line of $f matched /$re/ for $sub"
}

# publish [FILE]: every daemon behind the zone's NS tokens serves FILE
# (default: the signed file if there is one, else the source).
publish() {
  local f=${1:-} t d
  [ -n "$f" ] || { [ -f "$Z/$ZN.signed" ] && f=$Z/$ZN.signed || f=$ZF; }
  for t in $ZNS; do
    d=$(ns_daemon "$t")
    [ -n "$d" ] && publish_on "$d" "$f"
  done
  return 0
}
# publish_on DAEMON FILE: one daemon serves FILE for the current zone
publish_on() {
  grep -qs "^$1 $ZN " "$FRAG/$ZN.serve" && return 0
  echo "$1 $ZN $2" >>"$FRAG/$ZN.serve"
}

# ---- SMTP fragments (consumed by smtp.sh) -----------------------------------------------
# pf ADDR HOST CHAINFILE [postfix -o settings...]: a Postfix listener
pf() { local a=$1 h=$2 c=$3; shift 3; printf 'pf\t%s\t%s\t%s\t%s\n' "$a" "$h" "$c" "$*" >>"$FRAG/$SC.smtp"; }
# peer ADDR HOST MODE [TLSFILE]: an smtp_peer listener
peer() { printf 'peer\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$FRAG/$SC.smtp"; }
# closed ADDR: the address exists, nothing listens on port 25 (connection refused)
closed() { printf 'closed\t%s\t-\t-\t\n' "$1" >>"$FRAG/$SC.smtp"; }

# ---- root and TLD -----------------------------------------------------------------------
build_tld() {
  {
    cat <<EOF
\$ORIGIN $TLD.
\$TTL 3600
@          SOA  ns-knot hostmaster 1 3600 600 604800 300
@          NS   ns-knot
ns-knot    A    $KNOT4
ns-knot    AAAA $KNOT6
ns-a       A    $NSDA4
ns-a       AAAA $NSDA6
ns-b       A    $NSDB4
ns-b       AAAA $NSDB6
ns-refuse  A    $REFUSE4
ns-refuse  AAAA $REFUSE6
ns-drop1   A    $DROP1_4
ns-drop1   AAAA $DROP1_6
ns-drop2   A    $DROP2_4
ns-drop2   AAAA $DROP2_6
ns-drop6   A    $DROP6_4
ns-drop6   AAAA $DROP6_6
ns-closed  A    $CLOSED4
ns-closed  AAAA $CLOSED6
ns-dead    A    $DEAD4
ns-dead    AAAA $DEAD6
ns-dropk   A    $DROPK4
ns-dropk   AAAA $DROPK6
ns-notcp   A    $NOTCP4
ns-notcp   AAAA $NOTCP6
EOF
    cat "$FRAG"/*.deleg
  } >"$Z/$TLD.zone"
  cat >"$Z/root.zone" <<EOF
\$ORIGIN .
\$TTL 3600
.                SOA  ns-knot.$TLD. hostmaster.$TLD. $ZSERIAL 1800 900 604800 300
.                NS   ns-knot.$TLD.
$TLD.            NS   ns-knot.$TLD.
ns-knot.$TLD.    A    $KNOT4
ns-knot.$TLD.    AAAA $KNOT6
EOF
  mkdir -p "$K/root"
  (cd "$K/root" && dnssec-keygen -q -a ECDSAP256SHA256 -f KSK . >/dev/null && dnssec-keygen -q -a ECDSAP256SHA256 . >/dev/null) ||
    die "root keygen failed"
  # Trust anchor, two forms: DNSKEY (KSK only) and DS.
  mkdir -p "$B/trust"
  local ksk
  ksk=$(grep -l 'DNSKEY[[:space:]]*257 ' "$K"/root/K*.key)
  grep -v '^;' "$ksk" | sed -E 's/^\.[[:space:]]+([0-9]+[[:space:]]+)?IN[[:space:]]+DNSKEY[[:space:]]+/. IN DNSKEY /' >"$B/trust/root.key"
  dnssec-dsfromkey -2 "$ksk" >"$B/trust/root.ds"
  [ -s "$B/trust/root.ds" ] || die "no root DS"
  # Unbound wants the same anchor; BIND syntax (for delv -a) too
  awk '{d=""; for(i=7;i<=NF;i++) d=d $i; printf "trust-anchors {\n  \".\" static-ds %s %s %s \"%s\";\n};\n",$4,$5,$6,d}' \
    "$B/trust/root.ds" >"$B/trust/root.delv"
}

sign_root() {
  dnssec-signzone -q -O full -S -K "$K/root" -d "$K/root" -o . -f "$Z/root.signed" "$Z/root.zone" >/dev/null 2>"$K/root/sign.log" ||
    { cat "$K/root/sign.log" >&2; die "signing the root failed"; }
}

# ---- knotd ------------------------------------------------------------------------------
# Besides the zones of $FRAG/*.serve, knot.conf takes $FRAG/*.knot-sections (key, remote and
# acl sections: Knot wants them before the zones that refer to them) and $FRAG/*.knot-zone
# (whole zone entries), both written by update.sh.
knot_conf() {
  mkdir -p "$B/knot/db" "$B/knot/run"
  {
    cat <<EOF
server:
    rundir: $B/knot/run
    listen: [ $KNOT4@53, $KNOT6@53 ]
    identity: ns-knot
log:
  - target: $B/knot/knot.log
    any: info
database:
    storage: $B/knot/db
policy:
  - id: ecdsa
    algorithm: ecdsap256sha256
    nsec3: off
$(cat "$FRAG"/*.knot-sections 2>/dev/null)
template:
  - id: default
    storage: $Z
    zonefile-sync: -1            # never rewrite zone files (they are the bed's fixtures)
zone:
  - domain: .                    # signed by dnssec-signzone once Knot made the example. KSK
    file: root.signed
  - domain: $TLD.                # signed by Knot itself
    file: $TLD.zone
    dnssec-signing: on
    dnssec-policy: ecdsa
    zonefile-load: difference-no-serial
    journal-content: all         # required by difference-no-serial
EOF
    awk '$1 == "knot" {printf "  - domain: %s.\n    file: %s\n", $2, $3}' "$FRAG"/*.serve
    cat "$FRAG"/*.knot-zone 2>/dev/null || true
  } >"$B/knot/knot.conf"
}

knot_up() {
  knot_conf
  "${X[@]}" knotd -c "$B/knot/knot.conf" -d 9>&-
  wait_dns "$KNOT4" "$TLD." DNSKEY || die "knotd does not serve $TLD."
  keymgr -c "$B/knot/knot.conf" "$TLD." ds | awk '$5 == 2' >>"$Z/root.zone"
  grep -q " DS " "$Z/root.zone" || die "no DS for $TLD. from keymgr"
  sign_root
  "${X[@]}" knotc -b -c "$B/knot/knot.conf" zone-reload . >/dev/null
  wait_dns "$KNOT4" . DNSKEY || die "knotd does not serve the root"
}

# ---- nsd (two instances: one zone version per instance) ----------------------------------
nsd_conf() { # name addresses...
  local d=$B/$1 n=$1 a
  shift
  mkdir -p "$d"
  {
    echo "server:"
    for a in "$@"; do echo "    ip-address: $a"; done
    cat <<EOF
    port: 53
    identity: "$n"
    username: ""
    chroot: ""
    database: ""
    zonelistfile: $d/zone.list
    xfrdfile: $d/xfrd.state
    xfrdir: $d
    pidfile: $d/nsd.pid
    logfile: $d/nsd.log
    verbosity: 1
    server-count: 1
    refuse-any: yes
remote-control:
    control-enable: yes
    control-interface: $d/nsd.ctl
EOF
    awk -v n="$n" '$1 == n {printf "zone:\n    name: %s.\n    zonefile: %s\n", $2, $3}' "$FRAG"/*.serve
  } >"$d/nsd.conf"
  nsd-checkconf "$d/nsd.conf" || die "bad $d/nsd.conf"
}

nsd_up() {
  nsd_conf nsd-a "$NSDA4" "$NSDA6" "$DROP1_4" "$DROP1_6"
  nsd_conf nsd-b "$NSDB4" "$NSDB6" "$DROP2_4" "$DROP2_6" "$DROP6_4" "$DROP6_6" "$DROPK4" "$DROPK6" \
    "$NOTCP4" "$NOTCP6"
  "${X[@]}" nsd -c "$B/nsd-a/nsd.conf" 9>&- || die "nsd-a failed to start (see $B/nsd-a/nsd.log)"
  "${X[@]}" nsd -c "$B/nsd-b/nsd.conf" 9>&- || die "nsd-b failed to start (see $B/nsd-b/nsd.log)"
}

# ---- dnsdist: REFUSED for TLSA, everything else forwarded to nsd-a -----------------------
dnsdist_up() {
  mkdir -p "$B/dnsdist"
  cat >"$B/dnsdist/dnsdist.conf" <<EOF
-- ns-refuse.$TLD: a DNS frontend that answers every TLSA query with REFUSED itself and
-- forwards all other queries to nsd-a (a "security appliance" that does not know TLSA).
setLocal('$REFUSE4:53')
addLocal('[$REFUSE6]:53')
setSecurityPollSuffix('')
setACL({'0.0.0.0/0', '::/0'})
newServer({address='$NSDA4:53', name='nsd-a', checkName='ns-refuse.$TLD.', checkType='A', checkInterval=5})
addAction(QTypeRule(DNSQType.TLSA), RCodeAction(DNSRCode.REFUSED))
EOF
  # dnsdist stays in the foreground; sh records its PID, then becomes it (exec)
  # shellcheck disable=SC2016 # expanded by that sh
  setsid -f "${X[@]}" sh -c 'echo $$ >"$1"; exec dnsdist --supervised --disable-syslog -C "$2"' sh \
    "$B/dnsdist/dnsdist.pid" "$B/dnsdist/dnsdist.conf" </dev/null >"$B/dnsdist/dnsdist.log" 2>&1 9>&-
}

# ---- nftables: TLSA- and DNSKEY-dropping addresses, no TCP, the dead server -------------
nft_up() {
  local L f=$B/nftables.nft
  {
    cat <<EOF
table inet testbed {
  chain tlsa_drop {
  }
  chain dnskey_drop {
  }
  chain input {
    type filter hook input priority 0; policy accept;
    # ns-dead: silent on every port and family
    ip daddr $DEAD4 drop
    ip6 daddr $DEAD6 drop
    # Only packets to the TLSA-dropping servers walk the per-length rules of
    # tlsa_drop; everything else in the namespace (benchmarks included) pays
    # one set lookup per packet instead of a thousand rules.
    ip daddr { $DROP1_4, $DROP2_4 } jump tlsa_drop
    ip6 daddr { $DROP1_6, $DROP2_6, $DROP6_6 } jump tlsa_drop
    # ns-dropk: DNSKEY queries dropped (both families); ns-notcp: TCP to port 53 refused
    # (a reset, not silence: resolvers then fail over at once, so the oracle's view through
    # Unbound does not hang on its TCP timeout)
    ip daddr $DROPK4 jump dnskey_drop
    ip6 daddr $DROPK6 jump dnskey_drop
    ip daddr $NOTCP4 tcp dport 53 reject with tcp reset
    ip6 daddr $NOTCP6 tcp dport 53 reject with tcp reset
  }
}
EOF
    # TLSA (QTYPE 52) dropped on ns-drop1/ns-drop2 (both families) and ns-drop6 (IPv6 only).
    # QNAME has a variable wire length L; nft has no variable offsets, so one rule per L
    # matches the QNAME's final 0x00 followed by QTYPE 0x0034 (testbed-recipes.md section 5).
    for ((L = 1; L <= 255; L++)); do
      echo "add rule inet testbed tlsa_drop udp dport 53 @th,$(((8 + 12 + L - 1) * 8)),24 0x000034 counter drop"
      echo "add rule inet testbed tlsa_drop tcp dport 53 @ih,$(((2 + 12 + L - 1) * 8)),24 0x000034 counter drop"
      # the same for DNSKEY (QTYPE 48) on ns-dropk
      echo "add rule inet testbed dnskey_drop udp dport 53 @th,$(((8 + 12 + L - 1) * 8)),24 0x000030 counter drop"
      echo "add rule inet testbed dnskey_drop tcp dport 53 @ih,$(((2 + 12 + L - 1) * 8)),24 0x000030 counter drop"
    done
  } >"$f"
  "${X[@]}" nft -f "$f" || die "nft ruleset failed"
}

# ---- unbound ------------------------------------------------------------------------------
unbound_up() {
  local d=$B/unbound
  mkdir -p "$d"
  cat >"$d/root.hints" <<EOF
.                 3600000  NS    ns-knot.$TLD.
ns-knot.$TLD.     3600000  A     $KNOT4
ns-knot.$TLD.     3600000  AAAA  $KNOT6
EOF
  cat >"$d/unbound.conf" <<EOF
server:
    interface: $RES4
    interface: $RES6
    port: 53
    access-control: 0.0.0.0/0 refuse
    access-control: 192.0.2.0/24 allow
    access-control: 198.51.100.0/24 allow
    access-control: 203.0.113.0/24 allow
    access-control: 2001:db8::/32 allow
    do-ip4: yes
    do-ip6: yes
    username: ""
    chroot: ""
    directory: "$d"
    pidfile: "$d/unbound.pid"
    use-syslog: no
    logfile: "$d/unbound.log"
    verbosity: 1
    val-log-level: 2
    log-servfail: yes
    ede: yes
    module-config: "validator iterator"
    root-hints: "$d/root.hints"
    trust-anchor-file: "$B/trust/root.ds"
    # the authoritative servers are on 198.51.100.x, not 127.x: no do-not-query-localhost
$(cat "$FRAG"/*.unbound 2>/dev/null | sed 's/^/    /')
remote-control:
    control-enable: yes
    control-interface: "$d/unbound.ctl"
EOF
  unbound-checkconf "$d/unbound.conf" >/dev/null || die "bad unbound.conf"
  "${X[@]}" unbound -c "$d/unbound.conf" 9>&- || die "unbound failed to start"
}
