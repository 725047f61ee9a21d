# shellcheck shell=bash
# The dynamic-update zone (RFC 2136) for certificate rollovers: rollover.example, whose
# primary is knotd with automatic DNSSEC signing (its DS goes into example.), whose
# secondary is its own NSD instance (nsd-s) fed by NOTIFY and IXFR/AXFR, and whose MX hosts
# are Postfix listeners serving a "live" certificate file that a deploy hook may replace.
#
# Knot accepts an UPDATE only when it is signed with one of the upd-sha256 / upd-sha512 TSIG
# keys, changes TLSA records only, and only at the listed _25._tcp owner names (Knot 3.2 has
# no owner patterns: "update-owner-match: equal" with a list). upd-denied is a key Knot knows
# that no rule allows, for the failure tests.
#
# Transfers to nsd-s can be held back (scripts/testbed xfr hold: nftables drops nsd-s's
# queries to knotd, but not its answers to knotd's NOTIFYs, so it keeps serving its old
# copy) and resumed (xfr resume: the rule goes and nsd-s is told to check the primary at
# once).

UPD_ZONE=rollover.$TLD
UPD_DIR=$B/update
UPD_TLSA_TTL=10
# MX host label and its Postfix address number N (192.0.2.N; "v6": also 2001:db8:25::N)
UPD_HOSTS=("mx 120 v6" "mx2 121 -")
# More TLSA owners the ACL allows (hosts without addresses), one per update test, so that
# tests running side by side never touch the same RRset.
UPD_TEST_OWNERS=(t1 t2 t3 t4 t5 t6 t7 t8 t9 t10)
UPD_KEYS=("upd-sha256 hmac-sha256" "upd-sha512 hmac-sha512" "upd-denied hmac-sha256")

# keymgr -t prints the key in Knot's YAML form (with a "# alg:name:secret" comment line);
# the same key is also written in BIND syntax as tsig-keygen prints it.
upd_key() { # name algorithm
  local n=$1 alg=$2 secret
  (
    umask 077
    keymgr -t "$n" "$alg" >"$UPD_DIR/$n.knot.key" || exit 1
    secret=$(awk '$1 == "secret:" {print $2}' "$UPD_DIR/$n.knot.key")
    [ -n "$secret" ] || exit 1
    printf 'key "%s" {\n\talgorithm %s;\n\tsecret "%s";\n};\n' "$n" "$alg" "$secret" >"$UPD_DIR/$n.key"
  ) || die "TSIG key $n: keymgr -t failed"
}

upd_owner_list() { # the allowed TLSA owners, relative to the zone, comma-separated
  local h rel=() o
  for h in "${UPD_HOSTS[@]}"; do rel+=("_25._tcp.${h%% *}"); done
  for o in "${UPD_TEST_OWNERS[@]}"; do rel+=("_25._tcp.$o"); done
  local IFS=,
  echo "${rel[*]}"
}

# Keys, certificates, the zone file and the fragments for build_tld, knot_conf and Postfix.
# Runs after pki_base and before build_tld.
upd_build() {
  rm -rf "$UPD_DIR"
  mkdir -p "$UPD_DIR"
  local k
  for k in "${UPD_KEYS[@]}"; do
    # shellcheck disable=SC2086 # "name algorithm"
    upd_key $k
  done
  # shellcheck disable=SC2034 # SC names the fragment that pf writes
  local SC=$UPD_ZONE ZF=$Z/$UPD_ZONE.zone h label n v6 H C
  {
    # shellcheck disable=SC2016 # zone-file directives
    printf '$ORIGIN %s.\n$TTL 60\n' "$UPD_ZONE"
    # refresh 30 s, retry 2 s: a secondary that missed a NOTIFY catches up quickly;
    # negative answers are cached for 5 s only
    printf '@ SOA ns-knot.%s. hostmaster.%s. %s 30 2 86400 5\n' "$TLD" "$UPD_ZONE" "$ZSERIAL"
    printf '@ NS ns-knot.%s.\n@ NS ns-sec.%s.\n' "$TLD" "$TLD"
    printf '@ MX %s\n' "10 mx" "20 mx2"
  } >"$ZF"
  for h in "${UPD_HOSTS[@]}"; do
    read -r label n v6 <<<"$h"
    H=$label.$UPD_ZONE C=$PKI/$label.$UPD_ZONE
    leaf "$H.rsa" rsa int 825 "$H"
    leaf "$H.next" ec int 825 "$H"
    cp "$C.rsa.pem" "$C.live.pem"
    {
      printf '%s A %s\n' "$label" "$(v4 "$n")"
      [ "$v6" = v6 ] && printf '%s AAAA %s\n' "$label" "$(v6 "$n")"
      printf '_25._tcp.%s %s TLSA 3 1 1 %s\n' "$label" "$UPD_TLSA_TTL" "$(spki256 "$C.rsa.crt")"
      printf '_25._tcp.%s %s TLSA 2 1 1 %s\n' "$label" "$UPD_TLSA_TTL" "$(<"$PKI/int.spki256")"
    } >>"$ZF"
    pf "$(v4 "$n")" "$H" "$C.live.pem"
    [ "$v6" = v6 ] && pf "$(v6 "$n")" "$H" "$C.live.pem"
  done
  # the delegation from example. (the DS follows once knotd has made the KSK: upd_ds)
  printf '%s. NS ns-knot.%s.\n%s. NS ns-sec.%s.\nns-sec.%s. A %s\nns-sec.%s. AAAA %s\n' \
    "$UPD_ZONE" "$TLD" "$UPD_ZONE" "$TLD" "$TLD" "$NSDS4" "$TLD" "$NSDS6" >"$FRAG/$UPD_ZONE.deleg"
  upd_knot_fragments
}

upd_knot_fragments() {
  local k
  {
    echo "key:"
    for k in "${UPD_KEYS[@]}"; do
      grep -v -e '^#' -e '^key:' "$UPD_DIR/${k%% *}.knot.key"
    done
    cat <<EOF
remote:
  - id: nsd-s
    address: [ $NSDS4@53 ]
    via: [ $KNOT4 ]                # nsd-s accepts NOTIFY from this address only
acl:
  - id: upd-transfer
    address: [ $NSDS4, $NSDS6 ]
    action: transfer
  - id: upd-tlsa
    key: [ upd-sha256, upd-sha512 ]
    action: update
    update-type: [ TLSA ]
    update-owner: name
    update-owner-match: equal
    update-owner-name: [ $(upd_owner_list | sed 's/,/, /g') ]
EOF
  } >"$FRAG/$UPD_ZONE.knot-sections"
  chmod 600 "$FRAG/$UPD_ZONE.knot-sections"
  cat >"$FRAG/$UPD_ZONE.knot-zone" <<EOF
  - domain: $UPD_ZONE.             # signed by Knot, changed by UPDATE, sent to nsd-s
    file: $UPD_ZONE.zone
    dnssec-signing: on
    dnssec-policy: ecdsa
    zonefile-load: difference-no-serial
    journal-content: all
    notify: [ nsd-s ]
    acl: [ upd-transfer, upd-tlsa ]
EOF
}

# Once knotd signs the zone: its DS into example. (re-signed by Knot on reload).
upd_ds() {
  wait_dns "$KNOT4" "$UPD_ZONE." DNSKEY || die "knotd does not serve $UPD_ZONE."
  local ds
  ds=$(keymgr -c "$B/knot/knot.conf" "$UPD_ZONE." ds | awk '$5 == 2')
  [ -n "$ds" ] || die "no DS for $UPD_ZONE. from keymgr"
  echo "$ds" >>"$Z/$TLD.zone"
  "${X[@]}" knotc -b -c "$B/knot/knot.conf" zone-reload "$TLD." >/dev/null || die "knotc zone-reload $TLD. failed"
  wait_dns "$KNOT4" "$UPD_ZONE." DS || die "example. does not serve the DS of $UPD_ZONE."
}

nsd_s_conf() {
  local d=$B/nsd-s
  mkdir -p "$d"
  cat >"$d/nsd.conf" <<EOF
server:
    ip-address: $NSDS4
    ip-address: $NSDS6
    port: 53
    identity: "nsd-s"
    username: ""
    chroot: ""
    database: ""
    zonesdir: $d
    zonelistfile: $d/zone.list
    xfrdfile: $d/xfrd.state
    xfrdir: $d
    pidfile: $d/nsd.pid
    logfile: $d/nsd.log
    verbosity: 2
    server-count: 1
    refuse-any: yes
remote-control:
    control-enable: yes
    control-interface: $d/nsd.ctl
zone:
    name: $UPD_ZONE.
    zonefile: $UPD_ZONE.zone
    request-xfr: $KNOT4 NOKEY
    allow-notify: $KNOT4 NOKEY
    outgoing-interface: $NSDS4     # the source that "xfr hold" blocks
EOF
  nsd-checkconf "$d/nsd.conf" || die "bad $d/nsd.conf"
}

# After knotd is up: the DS, then the secondary (its first AXFR follows at once).
upd_up() {
  upd_ds
  nsd_s_conf
  "${X[@]}" nsd -c "$B/nsd-s/nsd.conf" 9>&- || die "nsd-s failed to start (see $B/nsd-s/nsd.log)"
}

upd_ready() {
  wait_dns "$NSDS4" "$UPD_ZONE." SOA || die "nsd-s does not serve $UPD_ZONE. (see $B/nsd-s/nsd.log)"
  wait_dns "$RES4" "mx.$UPD_ZONE." A ad || die "unbound does not validate $UPD_ZONE."
}

# xfr hold | resume | status
upd_xfr() {
  netns_exists || die "the bed is not up"
  case ${1:-} in
    hold)
      "${X[@]}" nft -f - <<EOF || die "nft failed"
table inet testbed_xfr
delete table inet testbed_xfr
table inet testbed_xfr {
  chain input {
    type filter hook input priority -10; policy accept;
    # nsd-s's queries (SOA, IXFR, AXFR) to knotd; its answers to knotd's
    # NOTIFYs still pass, or knotd would stall the zone's other events
    # (updates included) retrying them.
    ip saddr $NSDS4 ip daddr $KNOT4 th dport 53 counter drop
    ip6 saddr $NSDS6 ip6 daddr $KNOT6 th dport 53 counter drop
  }
}
EOF
      say "transfers to nsd-s held back"
      ;;
    resume)
      "${X[@]}" nft delete table inet testbed_xfr 2>/dev/null || true
      "${X[@]}" nsd-control -c "$B/nsd-s/nsd.conf" transfer "$UPD_ZONE." >/dev/null ||
        die "nsd-control transfer failed"
      say "transfers to nsd-s resumed"
      ;;
    status)
      if "${X[@]}" nft list table inet testbed_xfr >/dev/null 2>&1; then say held; else say flowing; fi
      ;;
    *) die "usage: scripts/testbed xfr hold|resume|status" ;;
  esac
}

upd_env() {
  local h hosts=() o owners=()
  for h in "${UPD_HOSTS[@]}"; do hosts+=("${h%% *}.$UPD_ZONE"); done
  IFS=, read -r -a owners <<<"$(upd_owner_list)"
  for o in "${!owners[@]}"; do owners[o]=${owners[o]}.$UPD_ZONE; done
  cat <<EOF
UPDATE_ZONE=$UPD_ZONE
UPDATE_PRIMARY=$KNOT4
UPDATE_PRIMARY6=$KNOT6
UPDATE_SECONDARY=$NSDS4,$NSDS6
UPDATE_NSD_CONF=$B/nsd-s/nsd.conf
UPDATE_KEY=$UPD_DIR/upd-sha256.key
UPDATE_KEY_KNOT=$UPD_DIR/upd-sha256.knot.key
UPDATE_KEY_SHA512=$UPD_DIR/upd-sha512.key
UPDATE_KEY_DENIED=$UPD_DIR/upd-denied.key
UPDATE_MX_HOSTS=$(IFS=,; echo "${hosts[*]}")
UPDATE_OWNERS=$(IFS=,; echo "${owners[*]}")
UPDATE_TEST_HOSTS=$(IFS=,; echo "${UPD_TEST_OWNERS[*]}")
UPDATE_TLSA_TTL=$UPD_TLSA_TTL
EOF
}
