# shellcheck shell=bash
# "testbed oracle": judge every scenario with independent DANE implementations.
#
#   posttls-finger -l dane   Postfix's DANE client; resolves through the netns resolv.conf
#                            (Unbound). Once per domain (MX selection as Postfix does it),
#                            and per MX host and address family ("[host]", -a ipv4/ipv6)
#                            when the MX RRset is secure and there is more than one.
#   openssl s_client         OpenSSL's DANE (-dane_tlsa_rrdata) per address of every host
#                            whose TLSA RRset Unbound validates (AD=1). For the dual-
#                            certificate scenarios (kt-*) twice instead: with RSA-only and
#                            with ECDSA-only signature algorithms (-sigalgs), so that each
#                            certificate is judged; for tls-legacy-only ones with
#                            -cipher DEFAULT:@SECLEVEL=0, the only way OpenSSL 3 still speaks
#                            TLS 1.0/1.1.
#   dig (per nameserver)     the nameserver faults no TLS client can see (ns-*, rrsig-*,
#                            implicit-mx, mx-cname) are checked on the servers directly.
#
# What each oracle should show is derived from the scenario's verdict and codes by the
# rules in expect_pf / expect_ossl / dns_checks below (documented in
# testdata/testbed/README.md). $B/oracle.tsv gets one row per scenario; raw outputs are in
# $B/oracle/<domain>.log.

ORACLE_JOBS=${DANE_TESTBED_ORACLE_JOBS:-24}

has() { [[ ";$CODES;" == *";$1;"* ]]; }

# posttls-finger class per expectation; alternatives separated by "|", sets joined by "+"
expect_pf() {
  if has null-mx; then echo no-mail
  elif has domain-nxdomain; then echo nxdomain
  elif has mx-bogus || has mx-lookup-failed || has host-lookup-failed || has host-no-address; then echo dns-failure
  elif has dnssec-witness-disagree; then echo Untrusted # Unbound (NTA) calls it insecure
  elif has mx-insecure-host-tlsa; then echo Trusted # Postfix: "MX RRset insecure: log verified as trusted"
  elif has mx-insecure || has host-address-insecure || has tlsa-insecure; then echo Untrusted
  elif has host-address-bogus || has tlsa-bogus || has tlsa-denial-bogus || has tlsa-lookup-failed; then echo dns-failure
  elif [ "$VERDICT" = not-dane ]; then echo Untrusted
  elif [ "$VERDICT" = partial ] || has addresses-disagree; then echo Untrusted+Verified
  elif has starttls-not-offered; then echo no-STARTTLS
  elif has starttls-refused; then echo STARTTLS-refused
  elif has tls-handshake-failed || has tls-legacy-only; then echo handshake-failed
  elif has tlsa-key-type-uncovered; then echo "Verified|Untrusted" # whichever certificate its default offer gets
  elif has smtp-rate-limited; then echo smtp-error
  elif has smtp-unreachable; then echo "connect-failed|timeout|smtp-error"
  elif has smtp-protocol-error; then echo "timeout|smtp-error"
  elif has host-denial-bogus; then echo Verified # Postfix uses the A record when AAAA fails
  elif has ns-unreachable; then echo Verified     # a dead secondary: the other NS answers
  elif [ "$VERDICT" = pass ]; then echo Verified
  elif [ "$VERDICT" = fail ]; then echo Untrusted
  else echo "?"
  fi
}

# openssl s_client per address of hosts with a validated TLSA RRset ("n/a": no such host)
expect_ossl() {
  if has null-mx || has domain-nxdomain || has mx-bogus || has mx-lookup-failed || has host-address-bogus ||
    has host-lookup-failed || has tlsa-bogus || has tlsa-denial-bogus || has tlsa-lookup-failed ||
    has dnssec-witness-disagree || has host-no-address; then echo n/a
  elif has mx-insecure-host-tlsa; then echo match # the host is fine; the domain is not DANE
  elif [ "$VERDICT" = not-dane ]; then echo n/a
  elif [ "$VERDICT" = partial ]; then echo match+n/a
  elif has addresses-disagree; then echo match+no-match
  elif [ "$KT" = 1 ] && has tlsa-key-type-uncovered; then echo "ecdsa:match+rsa:no-match|ecdsa:no-match+rsa:match"
  elif [ "$KT" = 1 ] && [ "$VERDICT" = pass ]; then echo ecdsa:match+rsa:match
  elif has tls-legacy-only && has tlsa-no-match; then echo no-match # read by a legacy-enabled client
  elif has tls-legacy-only; then echo match
  elif has starttls-not-offered || has starttls-refused || has tls-handshake-failed ||
    has smtp-rate-limited || has smtp-unreachable || has smtp-protocol-error; then echo error
  elif has host-denial-bogus || has ns-unreachable || [ "$VERDICT" = pass ]; then echo match
  elif has tlsa-all-unusable; then echo "no-match|unusable" # OpenSSL accepts usages 0/1, not 4
  elif [ "$VERDICT" = fail ]; then echo no-match
  else echo "?"
  fi
}

# dq SERVER NAME TYPE [dig options]: DQ_STATUS (NOERROR.../TIMEOUT), DQ_AD (0/1), DQ_ANS
dq() {
  local out
  out=$("${X[@]}" dig @"$1" +dnssec +time="${DQ_TIME:-5}" +tries="${DQ_TRIES:-2}" "${@:4}" "$2" "$3" 2>/dev/null) || true
  DQ_STATUS=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -1)
  [ -n "$DQ_STATUS" ] || DQ_STATUS=TIMEOUT
  DQ_AD=0
  grep -qE 'flags:[a-z ]* ad[ ;]' <<<"$out" && DQ_AD=1
  DQ_ANS=$(awk '/^;; ANSWER SECTION/{f=1; next} /^$/{f=0} f && !/^;/' <<<"$out")
  DQ_AUTH=$(awk '/^;; AUTHORITY SECTION/{f=1; next} /^$/{f=0} f && !/^;/' <<<"$out")
}
rrs() { awk -v t="$1" '$4 == t {$1=$2=$3=$4=""; sub(/^ +/, ""); print}' <<<"$DQ_ANS"; } # rdata of TYPE

pf_class() { # posttls-finger output on stdin -> one class
  local o
  o=$(cat)
  if grep -q 'Verified TLS connection established' <<<"$o"; then echo Verified
  elif grep -q 'Untrusted TLS connection established' <<<"$o"; then echo Untrusted
  elif grep -q 'Trusted TLS connection established' <<<"$o"; then echo Trusted
  elif grep -q 'Anonymous TLS connection established' <<<"$o"; then echo Anonymous
  elif grep -q 'does not accept mail (nullMX)' <<<"$o"; then echo no-mail
  elif grep -qE 'Name service error .*: Host not found$' <<<"$o"; then echo nxdomain
  elif grep -qE 'address lookup failed|TLSA lookup error|Name service error' <<<"$o"; then echo dns-failure
  elif grep -q 'STARTTLS rejected' <<<"$o"; then echo STARTTLS-refused
  elif grep -qE 'SSL_connect error|TLS handshake failed' <<<"$o"; then echo handshake-failed
  elif grep -q 'timeout while' <<<"$o"; then echo timeout
  elif grep -q 'SMTP service not available' <<<"$o"; then echo smtp-error
  elif grep -qE 'Connection refused|Network is unreachable|connect to .*: ' <<<"$o"; then echo connect-failed
  # Cut at the 64 KiB cap: the reply never ended (an endless multi-line reply),
  # whether or not posttls-finger's own timeout came before the cut.
  elif [ "${#o}" -ge 65000 ]; then echo smtp-error
  elif grep -q 'Connected to' <<<"$o" && ! grep -qE '< 250[- ]STARTTLS' <<<"$o"; then echo no-STARTTLS
  else echo other
  fi
}

ossl_class() { # s_client output on stdin -> match / no-match / unusable / error
  local o
  o=$(cat)
  if grep -q 'Failed to import any TLSA records' <<<"$o"; then
    echo unusable
  elif grep -q '^New, TLS' <<<"$o" && ! grep -q 'Cipher is (NONE)' <<<"$o"; then
    if grep -q '^Verification: OK' <<<"$o" && grep -qE '^DANE TLSA .* (matched|signed the certificate)' <<<"$o"; then echo match; else echo no-match; fi
  else
    echo error
  fi
}

set_add() { # set item -> "a+b" sorted unique
  printf '%s\n%s\n' "$1" "$2" | tr '+' '\n' | sort -u | grep -v '^$' | paste -sd+ -
}
matches() { # observed expected (expected may hold alternatives "a|b")
  local alt
  for alt in ${2//|/ }; do [ "$1" = "$alt" ] && return 0; done
  return 1
}

run_pf() { # ARGS... -> class. "-c" (no SMTP chat) first; when that says nothing conclusive
  # (e.g. no STARTTLS: posttls-finger then prints nothing), once more with the chat, capped
  # at 64 KiB (an endless EHLO reply would otherwise fill the disk).
  local o c
  o=$(timeout 45 "${X[@]}" env MAIL_CONFIG="$B/postfix/etc" posttls-finger -c -l dane -t 5 -T 6 "$@" 2>&1 | head -c 65536 || true)
  printf '\n$ posttls-finger -c -l dane %s\n%s\n' "$*" "$o" >>"$LOG"
  c=$(pf_class <<<"$o")
  if [ "$c" = other ]; then
    o=$(timeout 45 "${X[@]}" env MAIL_CONFIG="$B/postfix/etc" posttls-finger -l dane -t 5 -T 6 "$@" 2>&1 | head -c 65536 || true)
    printf '\n$ posttls-finger -l dane %s\n%s\n' "$*" "$o" >>"$LOG"
    c=$(pf_class <<<"$o")
  fi
  echo "$c"
}

# Signature algorithms that select the RSA, or the ECDSA, certificate of a server with both.
OSSL_RSA_SIGALGS=rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:RSA+SHA256:RSA+SHA384:RSA+SHA512
OSSL_ECDSA_SIGALGS=ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512

run_ossl() { # ADDR HOST TLSA-RRS (one "u s m hex" per line) [s_client options] -> class
  local a=$1 h=$2 rr args=() o
  while read -r rr; do [ -n "$rr" ] && args+=(-dane_tlsa_rrdata "$rr"); done <<<"$3"
  shift 3
  args+=("$@")
  case $a in *:*) a="[$a]" ;; esac
  o=$(timeout 8 "${X[@]}" openssl s_client -starttls smtp -connect "$a:25" -servername "$h" \
    -dane_tlsa_domain "$h" "${args[@]}" -dane_ee_no_namechecks </dev/null 2>&1 || true)
  printf '\n$ openssl s_client -connect %s:25 -dane_tlsa_domain %s %s\n%s\n' "$a" "$h" "${args[*]}" \
    "$(grep -E '^(Verification|Verify return|DANE TLSA|New, |Didn|.*error|.*warning|s_client)' <<<"$o")" >>"$LOG"
  ossl_class <<<"$o"
}

# ---- nameserver checks (what posttls-finger and openssl cannot see) ---------------------
ns_addrs() { # zone -> "name addr" lines of its NS set, from the delegation at ns-knot
  local n
  dq "$KNOT4" "$1" NS +norec
  awk '$4 == "NS" {print $5}' <<<"$DQ_AUTH" | sort -u | while read -r n; do
    "${X[@]}" dig @"$RES4" +short +time=3 +tries=1 "$n" A "$n" AAAA 2>/dev/null | sed "s|^|$n |"
  done
}

dns_checks() { # domain first-host -> "ok" or "FAIL: reasons"
  local d=$1 h=$2 bad="" n a z tl serials=() sets=() denials=() drops=0 refused=0 dead=0
  local c exp now zones=("$d")
  [ "${h#*.}" != "$d" ] && [ "$h" != "$d" ] && zones+=("${h#*.}") # the host's zone is on the path too
  if has ns-drops-tlsa || has ns-refuses-tlsa || has ns-unreachable || has ns-out-of-sync || has ns-denial-bogus; then
    for z in "${zones[@]}"; do
      while read -r n a; do
        [ -n "$a" ] || continue
        DQ_TIME=2 DQ_TRIES=1 dq "$a" "$z" SOA +norec
        if [ "$DQ_STATUS" = TIMEOUT ]; then
          dead=$((dead + 1))
          echo "  $z: $n $a: no answer to SOA" >>"$LOG"
          continue
        fi
        serials+=("$z $(rrs SOA | awk '{print $3}')")
        [[ $h == *".$z" ]] || continue # TLSA questions only to the host's own servers
        DQ_TIME=2 DQ_TRIES=1 dq "$a" "_25._tcp.$h" TLSA +norec
        tl=$DQ_STATUS
        case $tl in
          TIMEOUT)
            DQ_TIME=2 DQ_TRIES=1 dq "$a" "_25._tcp.$h" TXT +norec
            [ "$DQ_STATUS" != TIMEOUT ] && drops=$((drops + 1))
            ;;
          REFUSED | NOTIMP | FORMERR | SERVFAIL) refused=$((refused + 1)) ;;
          *)
            sets+=("$(rrs TLSA | tr -d ' ' | sort | paste -sd, -)")
            denials+=("$(awk '$4 ~ /^NSEC/' <<<"$DQ_AUTH" | sort | md5sum | cut -c1-8)")
            ;;
        esac
        echo "  $z: $n $a: SOA ${serials[-1]#* } TLSA $tl" >>"$LOG"
      done < <(ns_addrs "$z")
    done
    c=$(printf '%s\n' "${serials[@]}" | sort -u | wc -l)
    local s=$(($(printf '%s\n' "${sets[@]}" | sort -u | wc -l)))
    local dn=$(($(printf '%s\n' "${denials[@]}" | sort -u | wc -l)))
    has ns-drops-tlsa && [ $drops = 0 ] && bad+=" no server drops TLSA;"
    has ns-refuses-tlsa && [ $refused = 0 ] && bad+=" no server refuses TLSA;"
    has ns-unreachable && [ $dead = 0 ] && bad+=" every server answers;"
    has ns-out-of-sync && [ "$c" -lt 2 ] && [ "$s" -lt 2 ] && bad+=" servers in sync;"
    has ns-denial-bogus && [ "$dn" -lt 2 ] && bad+=" denials identical on all servers;"
  fi
  if has rrsig-expiring || has rrsig-expired; then
    dq "$RES4" "_25._tcp.$h" TLSA +cd
    exp=$(awk '$4 == "RRSIG" && $5 == "TLSA" {print $9}' <<<"$DQ_ANS" | sort | head -1)
    now=$(date -u +%Y%m%d%H%M%S)
    echo "  TLSA RRSIG expires $exp (now $now)" >>"$LOG"
    if has rrsig-expired; then
      [[ -n $exp && $exp < $now ]] || bad+=" TLSA RRSIG not expired;"
    else
      [[ -n $exp && $exp > $now && $exp < $(date -u -d '3 days' +%Y%m%d%H%M%S) ]] || bad+=" TLSA RRSIG not expiring within 3 days;"
    fi
  fi
  if has implicit-mx; then
    dq "$RES4" "$d" MX
    [ "$DQ_STATUS" = NOERROR ] && [ "$DQ_AD" = 1 ] && [ -z "$(rrs MX)" ] || bad+=" MX not securely absent;"
  fi
  if has mx-cname; then
    dq "$RES4" "$h" CNAME
    [ -n "$(rrs CNAME)" ] || bad+=" MX target is not a CNAME;"
  fi
  bad+=$(hygiene_checks "$d" "$h")
  if [ -z "$bad" ]; then echo ok; else echo "FAIL:${bad%;}"; fi
}

# ---- DNSSEC and nameserver hygiene of the domain's zone (issue 15) ------------------------
# What the zone publishes (validated by Unbound, AD=1) and what each of its servers does
# when asked directly; prints " reason;" for each expected code the servers contradict.
hygiene_checks() { # domain first-host
  local d=$1 h=$2 out="" n a v weak=0 dropk=0 notcp=0 tc=0
  if has dnssec-algorithm-deprecated; then
    dq "$RES4" "$d" DNSKEY
    v=$(rrs DNSKEY | awk '{print $3}' | sort -u | paste -sd, -)
    echo "  DNSKEY algorithms: $v (AD=$DQ_AD)" >>"$LOG"
    [ "$DQ_AD" = 1 ] && [ -n "$v" ] && ! tr , '\n' <<<"$v" | grep -qvxE '1|3|5|6|7|10|12' ||
      out+=" DNSKEY algorithms $v are not all deprecated (or not validated);"
  fi
  if has ds-digest-sha1-only; then
    dq "$RES4" "$d" DS
    v=$(rrs DS | awk '{print $3}' | sort -u | paste -sd, -)
    echo "  DS digest types: $v (AD=$DQ_AD)" >>"$LOG"
    [ "$DQ_AD" = 1 ] && [ "$v" = 1 ] || out+=" DS digest types $v, not SHA-1 only;"
  fi
  if has dnssec-key-weak; then
    dq "$RES4" "$d" DNSKEY
    # RSA key field (RFC 3110): 1 length byte + 3 exponent bytes (65537), then the modulus
    while read -r v; do
      n=$(base64 -d <<<"$v" 2>/dev/null | wc -c)
      echo "  RSA DNSKEY of about $(((n - 4) * 8)) bits" >>"$LOG"
      [ $(((n - 4) * 8)) -lt 2048 ] && weak=$((weak + 1))
    done < <(rrs DNSKEY | sed 's/;.*//' | awk '$3 ~ /^(1|5|7|8|10)$/ {k = ""; for (i = 4; i <= NF; i++) k = k $i; print k}')
    [ "$DQ_AD" = 1 ] && [ "$weak" -gt 0 ] || out+=" no RSA DNSKEY under 2048 bits (or not validated);"
  fi
  if has nsec3-parameters; then
    dq "$RES4" "$d" NSEC3PARAM
    v=$(rrs NSEC3PARAM | head -1)
    echo "  NSEC3PARAM $v (AD=$DQ_AD)" >>"$LOG"
    [ "$DQ_AD" = 1 ] && awk '{exit !($3 > 0 || $4 != "-")}' <<<"$v" || out+=" NSEC3PARAM '$v' has no iterations or salt;"
  fi
  if has ns-drops-dnskey || has ns-no-tcp || has tlsa-rrset-large; then
    while read -r n a; do
      [ -n "$a" ] || continue
      DQ_TIME=2 DQ_TRIES=1 dq "$a" "$d" SOA +norec
      [ "$DQ_STATUS" = TIMEOUT ] && continue
      DQ_TIME=2 DQ_TRIES=1 dq "$a" "$d" DNSKEY +norec +ignore
      echo "  $n $a: DNSKEY $DQ_STATUS" >>"$LOG"
      [ "$DQ_STATUS" = TIMEOUT ] && dropk=$((dropk + 1))
      DQ_TIME=2 DQ_TRIES=1 dq "$a" "$d" SOA +norec +tcp
      echo "  $n $a: SOA over TCP $DQ_STATUS" >>"$LOG"
      [ "$DQ_STATUS" = TIMEOUT ] && notcp=$((notcp + 1))
      "${X[@]}" dig @"$a" +norec +dnssec +bufsize=1232 +ignore +time=2 +tries=1 "_25._tcp.$h" TLSA 2>/dev/null |
        grep -qE 'flags:[a-z ]* tc[ ;]' && tc=$((tc + 1)) && echo "  $n $a: TLSA truncated at 1232 octets" >>"$LOG"
    done < <(ns_addrs "$d")
    has ns-drops-dnskey && [ $dropk = 0 ] && out+=" no server drops DNSKEY;"
    has ns-no-tcp && [ $notcp = 0 ] && out+=" every server answers over TCP;"
    has tlsa-rrset-large && [ $tc = 0 ] && out+=" the TLSA answer fits 1232 octets;"
  fi
  printf '%s' "$out"
}

# ossl_addr ADDR HOST TLSA-RRS -> class(es) for one address: per key type for the
# dual-certificate scenarios, legacy-enabled for the legacy-only ones
ossl_addr() {
  if [ "$KT" = 1 ]; then
    set_add "rsa:$(run_ossl "$@" -sigalgs "$OSSL_RSA_SIGALGS")" "ecdsa:$(run_ossl "$@" -sigalgs "$OSSL_ECDSA_SIGALGS")"
  elif has tls-legacy-only; then
    run_ossl "$@" -cipher 'DEFAULT:@SECLEVEL=0'
  else
    run_ossl "$@"
  fi
}

oracle_one() { # domain verdict codes
  local d=$1 VERDICT=$2 CODES=$3 LOG=$B/oracle/$1.log KT=0
  [[ $d == kt-* ]] && KT=1 # one listener, an RSA and an ECDSA certificate
  : >"$LOG"
  local hosts=() h t a mxsec=0 pf="" ossl="" c tlsa base
  # ---- the resolver's view: MX hosts (implicit MX: the domain itself)
  dq "$RES4" "$d" MX
  echo "MX: $DQ_STATUS ad=$DQ_AD $(rrs MX | paste -sd, -)" >>"$LOG"
  if [ "$DQ_STATUS" = NOERROR ]; then
    mxsec=$DQ_AD
    if [ -z "$(rrs MX)" ]; then
      hosts=("$d")
    else
      for h in $(rrs MX | awk '$2 != "." {sub(/\.$/, "", $2); print $2}'); do hosts+=("$h"); done
    fi
  fi
  # ---- posttls-finger on the domain, as a sending MTA would (in parallel with the rest)
  (LOG=$LOG.pf run_pf "$d" >"$B/oracle/$d.pfclass") &
  local pfjob=$!
  # ---- per host: addresses first (a host whose lookups time out is not asked again)
  local first=${hosts[0]:-mx.$d} nprobe=0 addrs
  local -A A4 A6 DEAD
  for h in "${hosts[@]}"; do
    dq "$RES4" "$h" A
    if [ "$DQ_STATUS" = TIMEOUT ]; then
      DEAD[$h]=1
      echo "host $h: A lookup timed out" >>"$LOG"
      continue
    fi
    A4[$h]=$(rrs A)
    dq "$RES4" "$h" AAAA
    A6[$h]=$(rrs AAAA)
    [ -n "${A4[$h]}" ] && [ -n "${A6[$h]}" ] && nprobe=2
  done
  [ ${#hosts[@]} -gt 1 ] && nprobe=2
  for h in "${hosts[@]}"; do
    if [ -n "${DEAD[$h]:-}" ]; then ossl=$(set_add "$ossl" n/a) && continue; fi
    # TLSA base domain: CNAME-expanded name first, then the original (RFC 7672 2.2.2)
    base=$h
    dq "$RES4" "$h" CNAME
    [ -n "$(rrs CNAME)" ] && base=$(rrs CNAME | head -1) && base=${base%.}
    dq "$RES4" "_25._tcp.$base" TLSA
    if [ "$DQ_STATUS" = NXDOMAIN ] && [ "$base" != "$h" ]; then base=$h && dq "$RES4" "_25._tcp.$base" TLSA; fi
    tlsa=""
    [ "$DQ_STATUS" = NOERROR ] && [ "$DQ_AD" = 1 ] &&
      tlsa=$(rrs TLSA | awk '{d=""; for (i = 4; i <= NF; i++) d = d $i; print $1, $2, $3, d}')
    echo "host $h (TLSA base $base): TLSA $DQ_STATUS ad=$DQ_AD $(wc -l <<<"$tlsa") records" >>"$LOG"
    for t in A AAAA; do
      if [ $t = A ]; then addrs=${A4[$h]}; else addrs=${A6[$h]}; fi
      [ -n "$addrs" ] || continue
      if [ "$mxsec" = 1 ] && [ "$nprobe" = 2 ]; then
        c=$(run_pf -a "$([ $t = A ] && echo ipv4 || echo ipv6)" "[$h]")
        pf=$(set_add "$pf" "$c")
      fi
      if [ -n "$tlsa" ]; then
        for a in $addrs; do ossl=$(set_add "$ossl" "$(ossl_addr "$a" "$base" "$tlsa")"); done
      fi
    done
    [ -n "$tlsa" ] || ossl=$(set_add "$ossl" n/a)
  done
  [ -n "$ossl" ] || ossl=n/a
  local epf eossl dns agree=yes
  epf=$(expect_pf)
  eossl=$(expect_ossl)
  dns=$(dns_checks "$d" "$first")
  wait "$pfjob" || true
  pf=$(set_add "$pf" "$(cat "$B/oracle/$d.pfclass")")
  cat "$LOG.pf" >>"$LOG"
  rm -f "$LOG.pf" "$B/oracle/$d.pfclass"
  if [ "$epf" = "?" ] || [ "$eossl" = "?" ]; then
    agree=n/a
  else
    matches "$pf" "$epf" || agree=no
    matches "$ossl" "$eossl" || agree=no
    [ "$dns" = ok ] || agree=no
  fi
  printf 'expected: posttls-finger %s, openssl %s\n' "$epf" "$eossl" >>"$LOG"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$d" "$VERDICT" "$pf" "$ossl" "$agree" "$dns" "$epf" "$eossl" \
    >"$B/oracle/$d.row"
}

oracle() {
  local t0 d v c rest
  t0=$(ts)
  status >"$B/status.out" 2>&1 || die "the bed is not up or is stale: $(grep -E 'NOT|NO |stale|not|down' "$B/status.out" | head -3 | tr -s ' ' | paste -sd';' -) (run scripts/testbed up)"
  rm -rf "$B/oracle"
  mkdir -p "$B/oracle"
  # start from a clean resolver state (no bogus or infra entries from earlier runs)
  "${X[@]}" unbound-control -c "$B/unbound/unbound.conf" flush_bogus >/dev/null 2>&1 || true
  # shellcheck disable=SC2034 # read by par
  local JOBS=$ORACLE_JOBS
  # the ones that wait for timeouts first, so that they overlap with everything else
  while IFS=$'\t' read -r d _ v c rest; do
    par oracle_one "$d" "$v" "$c"
  done < <(tail -n +2 "$SCENARIOS" | awk -F'\t' '{s = ($4 ~ /unreachable|lookup-failed|protocol-error|drops/) ? 0 : 1; print s "\t" $0}' |
    sort -s -t$'\t' -k1,1n | cut -f2-)
  par_wait
  {
    printf 'domain\texpected_verdict\tposttls_finger\topenssl\tagree\tdns_check\texpected_posttls_finger\texpected_openssl\n'
    while IFS=$'\t' read -r d rest; do cat "$B/oracle/$d.row"; done < <(tail -n +2 "$SCENARIOS")
  } >"$B/oracle.tsv"
  column -t -s $'\t' "$B/oracle.tsv" | cut -c1-200
  local no na yes
  yes=$(awk -F'\t' 'NR > 1 && $5 == "yes"' "$B/oracle.tsv" | wc -l)
  no=$(awk -F'\t' 'NR > 1 && $5 == "no"' "$B/oracle.tsv" | wc -l)
  na=$(awk -F'\t' 'NR > 1 && $5 == "n/a"' "$B/oracle.tsv" | wc -l)
  step "oracle: $yes agree, $no disagree, $na n/a ($B/oracle.tsv)" "$t0"
  [ "$no" = 0 ]
}
