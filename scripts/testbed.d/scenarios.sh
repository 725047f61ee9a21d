# shellcheck shell=bash
# One builder per row of testdata/testbed/scenarios.tsv: s_<domain label, "-" -> "_">.
# Each runs in its own subshell (in parallel) with SC=<domain>, and writes zone files,
# keys, certificates and fragments ($FRAG/<zone>.deleg|.serve, $FRAG/<domain>.smtp).
#
# Conventions: the MX host is mx.<domain>; Postfix serves 192.0.2.N (and 2001:db8:25::N),
# smtp_peer serves 203.0.113.N; N is fixed per scenario (see the address column of the
# README). "3 1 1 + 2 1 1" (leaf key + issuing CA) is the healthy record pair.

# std DOMAIN "NS TOKENS" N [v6]: zone with MX 10 mx, mx A 192.0.2.N (+ AAAA 2001:db8:25::N),
# RSA + ECDSA leaves for mx, and Postfix serving the RSA chain (key, leaf, intermediate).
std() {
  D=$1 H=mx.$1 C=$PKI/mx.$1
  zone "$D" "$2"
  rr "@ MX 10 mx" "mx A $(v4 "$3")"
  hostcert "$H"
  pf "$(v4 "$3")" "$H" "$C.rsa.pem"
  if [ "${4:-}" = v6 ]; then
    rr "mx AAAA $(v6 "$3")"
    pf "$(v6 "$3")" "$H" "$C.rsa.pem"
  fi
  return 0
}
# std_peer DOMAIN N MODE [tls]: like std, but smtp_peer serves 203.0.113.N in MODE
std_peer() {
  D=$1 H=mx.$1 C=$PKI/mx.$1
  zone "$D" "knot a"
  rr "@ MX 10 mx" "mx A $(p4 "$2")"
  hostcert "$H"
  peer "$(p4 "$2")" "$H" "$3" "${4:+$C.rsa.pem}"
}
# bare DOMAIN "NS TOKENS" ADDR: zone with MX 10 mx and mx A ADDR only (certificates by hand)
bare() {
  D=$1 H=mx.$1 C=$PKI/mx.$1
  zone "$D" "$2"
  rr "@ MX 10 mx" "mx A $3"
}
ee() { echo "3 1 1 $(spki256 "${1:-$C.rsa.crt}")"; } # DANE-EE SPKI SHA-256 of a cert
ta() { # DANE-TA SPKI SHA-256 of a CA (default: the intermediate, digest cached by pki_base)
  if [ -z "${1:-}" ]; then echo "2 1 1 $(<"$PKI/int.spki256")"; else echo "2 1 1 $(spki256 "$1")"; fi
}
finish() { sign "$@" && publish; }

# =============================== good ===============================================
s_good_311() { std good-311.example "knot a" 10; tlsa mx "$(ee)"; finish; }
s_good_312() { std good-312.example "knot a" 11; tlsa mx "3 1 2 $(spki512 "$C.rsa.crt")"; finish; }
s_good_301() { std good-301.example "knot a" 12; tlsa mx "3 0 1 $(cert256 "$C.rsa.crt")"; finish; }
s_good_211() { std good-211.example "knot a" 13; tlsa mx "$(ta)"; finish; }
s_good_311_211() { std good-311-211.example "knot a" 14; tlsa mx "$(ee)" "$(ta)"; finish; }
s_good_ta_root() { # the server sends leaf + intermediate + root; 2 1 1 pins the root
  std good-ta-root.example "knot a" 15
  cat "$PKI/ca.crt" >>"$C.rsa.pem"
  tlsa mx "$(ta "$PKI/ca.crt")"
  finish
}
s_good_ta_key() { # 2 1 0: the root's full public key is in DNS; the server sends leaf + intermediate
  std good-ta-key.example "knot a" 23
  tlsa mx "2 1 0 $(spki_der "$PKI/ca.crt" | od -An -v -tx1 | tr -d ' \n')"
  finish
}
s_good_implicit() { # no MX at all (NSEC proves it): the domain itself is the mail host
  D=good-implicit.example C=$PKI/good-implicit.example
  zone "$D" "knot a"
  rr "@ A $(v4 16)"
  hostcert "$D"
  pf "$(v4 16)" "$D" "$C.rsa.pem"
  tlsa @ "$(ee)" "$(ta)"
  finish
}
s_good_cname() { # MX -> mx (CNAME) -> real; TLSA at the expanded name (RFC 7672 2.2.2)
  D=good-cname.example C=$PKI/real.good-cname.example
  zone "$D" "knot a"
  rr "@ MX 10 mx" "mx CNAME real" "real A $(v4 17)"
  hostcert "real.$D" "mx.$D"
  pf "$(v4 17)" "real.$D" "$C.rsa.pem"
  tlsa real "$(ee)" "$(ta)"
  finish
}
s_good_tlsa_cname() { # the TLSA name is an alias to a record set the operator keeps once for many hosts
  std good-tlsa-cname.example "knot a" 24
  rr "_25._tcp.mx CNAME _dane.pool"
  rr "_dane.pool TLSA $(ee)" "_dane.pool TLSA $(ta)"
  finish
}
s_good_tlsa_wildcard() { # *._tcp.mx covers ports 25, 465, 587: the answer is a wildcard expansion (NSEC proof)
  std good-tlsa-wildcard.example "knot a" 25
  rr "*._tcp.mx TLSA $(ee)" "*._tcp.mx TLSA $(ta)"
  finish
}
s_good_tlsa_wildcard_nsec3() { # the same under NSEC3 (closest encloser and next closer name proofs)
  std good-tlsa-wildcard-nsec3.example "a b" 26
  rr "*._tcp.mx TLSA $(ee)" "*._tcp.mx TLSA $(ta)"
  NSEC3=1 finish
}
s_dns_wildcard_host() { # the MX host's address comes from *.pool; TLSA at _25._tcp.mx1.pool is a wildcard NODATA
  D=dns-wildcard-host.example H=mx1.pool.dns-wildcard-host.example
  zone "$D" "knot a"
  rr "@ MX 10 mx1.pool" "*.pool A $(v4 28)"
  hostcert "$H"
  pf "$(v4 28)" "$H" "$PKI/$H.rsa.pem"
  finish
}
s_dns_wildcard_host_shadowed() { # the TLSA at _25._tcp.mx1.pool makes mx1.pool an empty non-terminal: *.pool no longer gives it an address
  D=dns-wildcard-host-shadowed.example H=mx1.pool.dns-wildcard-host-shadowed.example
  zone "$D" "knot a"
  rr "@ MX 10 mx1.pool" "*.pool A $(v4 54)"
  hostcert "$H"
  pf "$(v4 54)" "$H" "$PKI/$H.rsa.pem"
  tlsa mx1.pool "3 1 1 $(spki256 "$PKI/$H.rsa.crt")"
  finish
}
s_good_rollover() { # current + next key published before the swap (RFC 7671 8.1)
  std good-rollover.example "knot a" 18
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$C.next.key" 2>/dev/null
  tlsa mx "$(ee)" "3 1 1 $(keyspki256 "$C.next.key")" "$(ta)"
  finish
}
s_good_dualstack() { std good-dualstack.example "knot a" 19 v6; tlsa mx "$(ee)" "$(ta)"; finish; }
s_good_rsa_ec() { # RSA chain on IPv4, ECDSA chain on IPv6, each key has its 3 1 1
  std good-rsa-ec.example "knot a" 20
  rr "mx AAAA $(v6 20)"
  pf "$(v6 20)" "$H" "$C.ec.pem"
  tlsa mx "$(ee)" "$(ee "$C.ec.crt")" "$(ta)"
  finish
}
s_good_x509v1() { # self-signed X.509 v1 leaf (no extensions), DANE-EE
  bare good-x509v1.example "knot a" "$(v4 21)"
  leaf "$H.v1" rsa v1self 825 "$H"
  pf "$(v4 21)" "$H" "$C.v1.pem"
  tlsa mx "$(ee "$C.v1.crt")"
  finish
}
s_good_nsec3() { std good-nsec3.example "a b" 22; tlsa mx "$(ee)" "$(ta)"; NSEC3=1 finish; }

s_good_rsa_zone() { # a legacy signing setup still common: RSASHA256 keys, NSEC3 with a salt and 10 iterations
  std good-rsa-zone.example "a b" 29
  tlsa mx "$(ee)" "$(ta)"
  ALG=RSASHA256 NSEC3=1 N3SALT=aabbccdd N3ITER=10 finish
}
s_good_ed25519_zone() { # zone signed with Ed25519 (algorithm 15, RFC 8080)
  std good-ed25519-zone.example "knot a" 51
  tlsa mx "$(ee)" "$(ta)"
  ALG=ED25519 finish
}

# =============================== DNS and DNSSEC =====================================
s_dns_unsigned() { std dns-unsigned.example "knot a" 30; publish; } # no DS, no RRSIG
s_dns_mx_bogus() {
  std dns-mx-bogus.example "a b" 31
  tlsa mx "$(ee)" "$(ta)"
  sign
  tamper "$Z/$ZN.signed" "^$D\.[[:space:]].*IN[[:space:]]+MX[[:space:]]" 's/MX([[:space:]]+)10 /MX\120 /'
  publish
}
s_dns_mx_lookup_failed() { # delegated (with a DS) to an address where nothing listens
  zone dns-mx-lookup-failed.example "closed"
  ds_only
}
s_dns_host_insecure() { # MX host in an unsigned zone
  zone dns-host-insecure.example "a b"
  rr "@ MX 10 mx.hosts-unsigned.$TLD."
  finish
  zone hosts-unsigned.example "knot a"
  rr "mx A $(v4 33)"
  hostcert mx.hosts-unsigned.example
  pf "$(v4 33)" mx.hosts-unsigned.example "$PKI/mx.hosts-unsigned.example.rsa.pem"
  publish
}
s_dns_host_bogus() {
  std dns-host-bogus.example "a b" 34
  tlsa mx "$(ee)" "$(ta)"
  sign
  tamper "$Z/$ZN.signed" "^mx\.$D\.[[:space:]].*IN[[:space:]]+A[[:space:]]" 's/192\.0\.2\.34$/192.0.2.134/'
  publish
}
s_dns_host_lookup_failed() { # the MX host's zone is delegated (with a DS) to a dead address
  zone dns-host-lookup-failed.example "a b"
  rr "@ MX 10 mx.hosts-dead.$TLD."
  finish
  zone hosts-dead.example "closed"
  ds_only
}
s_dns_host_denial_bogus() { # mx has A, no AAAA; the NSEC proving "no AAAA" is edited
  std dns-host-denial-bogus.example "a b" 35
  tlsa mx "$(ee)" "$(ta)"
  sign
  tamper "$Z/$ZN.signed" "^mx\.$D\.[[:space:]].*IN[[:space:]]+NSEC[[:space:]]" "s/NSEC([[:space:]]+)[^[:space:]]+/NSEC\1zz.$D./"
  publish
}
s_dns_tlsa_absent() { std dns-tlsa-absent.example "a b" 36; finish; }
s_dns_partial() { # two MX hosts, TLSA on mx1 only
  D=dns-partial.example
  zone "$D" "a b"
  rr "@ MX 10 mx1" "@ MX 20 mx2" "mx1 A $(v4 37)" "mx2 A $(v4 38)"
  hostcert "mx1.$D"
  hostcert "mx2.$D"
  pf "$(v4 37)" "mx1.$D" "$PKI/mx1.$D.rsa.pem"
  pf "$(v4 38)" "mx2.$D" "$PKI/mx2.$D.rsa.pem"
  tlsa mx1 "$(ee "$PKI/mx1.$D.rsa.crt")" "$(ta)"
  finish
}
s_dns_tlsa_insecure() { # _25._tcp.mx is an unsigned child zone (no DS) of a signed zone
  std dns-tlsa-insecure.example "knot a" 39
  rr "_25._tcp.mx NS ns-knot.$TLD." "_25._tcp.mx NS ns-a.$TLD."
  finish
  local e t
  e=$(ee) t=$(ta)
  zone "_25._tcp.mx.$D" "knot a" nodelegate
  rr "@ TLSA $e" "@ TLSA $t"
  publish
}
s_dns_tlsa_bogus() { # TLSA rdata edited after signing, on every NS
  std dns-tlsa-bogus.example "a b" 40
  tlsa mx "$(ee)" "$(ta)"
  sign
  tamper "$Z/$ZN.signed" "IN[[:space:]]+TLSA[[:space:]]" '{s/0$/1/;t;s/[1-9A-F]$/0/}'
  publish
}
s_dns_tlsa_denial_bogus() { # no TLSA; the NSEC covering _25._tcp.mx is edited
  std dns-tlsa-denial-bogus.example "a b" 41 v6
  sign
  tamper "$Z/$ZN.signed" "^mx\.$D\.[[:space:]].*IN[[:space:]]+NSEC[[:space:]]" "s/NSEC([[:space:]]+)[^[:space:]]+/NSEC\1zz.$D./"
  publish
}
s_dns_tlsa_wildcard_bogus() { # wildcard TLSA; the wildcard's NSEC (the proof that _25._tcp.mx is absent) is edited
  std dns-tlsa-wildcard-bogus.example "a b" 27
  rr "*._tcp.mx TLSA $(ee)" "*._tcp.mx TLSA $(ta)"
  sign
  tamper "$Z/$ZN.signed" "^\*\._tcp\.mx\.$D\.[[:space:]].*IN[[:space:]]+NSEC[[:space:]]" "s/NSEC([[:space:]]+)[^[:space:]]+/NSEC\1zz.$D./"
  publish
}
s_dns_tlsa_denial_bogus_nsec3() { # NSEC3 zone, no TLSA; every NSEC3 edited (mx has A+AAAA)
  std dns-tlsa-denial-bogus-nsec3.example "a b" 42 v6
  NSEC3=1 sign
  tamper "$Z/$ZN.signed" "IN[[:space:]]+NSEC3[[:space:]]" 's/$/ HINFO/'
  publish
}
s_dns_tlsa_drop_all() { std dns-tlsa-drop-all.example "drop1 drop2" 43; tlsa mx "$(ee)" "$(ta)"; finish; }
s_dns_tlsa_drop_v6() { std dns-tlsa-drop-v6.example "a drop6" 44; tlsa mx "$(ee)" "$(ta)"; finish; }
s_dns_tlsa_refused() { std dns-tlsa-refused.example "a refuse" 45; tlsa mx "$(ee)" "$(ta)"; finish; }
s_dns_ns_denial_bogus() { # no TLSA; nsd-b's copy has an edited NSEC, nsd-a's is fine
  std dns-ns-denial-bogus.example "a b" 46 v6
  sign
  cp "$Z/$ZN.signed" "$Z/$ZN.bad.signed"
  tamper "$Z/$ZN.bad.signed" "^mx\.$D\.[[:space:]].*IN[[:space:]]+NSEC[[:space:]]" "s/NSEC([[:space:]]+)[^[:space:]]+/NSEC\1zz.$D./"
  publish_on nsd-a "$Z/$ZN.signed"
  publish_on nsd-b "$Z/$ZN.bad.signed"
}
s_dns_ns_out_of_sync() { # nsd-a: serial S with 3 1 1 + 2 1 1 + 3 1 2; nsd-b: serial S-1 without 3 1 2
  std dns-ns-out-of-sync.example "a b" 47
  tlsa mx "$(ee)" "$(ta)"
  sed "s/ $ZSERIAL / $((ZSERIAL - 1)) /" "$ZF" >"$Z/$ZN.old.zone"
  tlsa mx "3 1 2 $(spki512 "$C.rsa.crt")"
  IN=$Z/$ZN.old.zone OUT=$Z/$ZN.old.signed sign
  sign
  publish_on nsd-a "$Z/$ZN.signed"
  publish_on nsd-b "$Z/$ZN.old.signed"
}
s_dns_ns_dead() { std dns-ns-dead.example "a dead" 48; tlsa mx "$(ee)" "$(ta)"; finish; }
s_dns_rrsig_expiring() { # every signature expires 2 days from now
  std dns-rrsig-expiring.example "a b" 49
  tlsa mx "$(ee)" "$(ta)"
  finish -e now+172800
}
s_dns_rrsig_expired() { # only the TLSA RRSIG expired (3 days ago), spliced from a back-dated run
  std dns-rrsig-expired.example "a b" 50
  tlsa mx "$(ee)" "$(ta)"
  sign
  OUT=$Z/$ZN.past sign -P -s "$(date -u -d '10 days ago' +%Y%m%d%H%M%S)" -e "$(date -u -d '3 days ago' +%Y%m%d%H%M%S)"
  local re="^_25\._tcp\.mx\.$D\.[[:space:]].*IN[[:space:]]+RRSIG[[:space:]]+TLSA[[:space:]]"
  { grep -Ev "$re" "$Z/$ZN.signed"; grep -E "$re" "$Z/$ZN.past"; } >"$Z/$ZN.spliced"
  grep -Eq "$re" "$Z/$ZN.spliced" || die "no TLSA RRSIG to splice in $ZN"
  mv "$Z/$ZN.spliced" "$Z/$ZN.signed"
  publish
}
s_dns_null_mx() { zone dns-null-mx.example "knot a"; rr "@ MX 0 ."; finish; }
s_dns_nxdomain() { :; } # nothing to build: example. proves the name does not exist
s_dns_witness_disagree() { # bogus TLSA, but Unbound has a negative trust anchor for the zone
  std dns-witness-disagree.example "a b" 53
  tlsa mx "$(ee)" "$(ta)"
  sign
  tamper "$Z/$ZN.signed" "IN[[:space:]]+TLSA[[:space:]]" '{s/0$/1/;t;s/[1-9A-F]$/0/}'
  publish
  echo "domain-insecure: \"$D\"" >"$FRAG/$D.unbound"
}
s_dns_mx_insecure_host_tlsa() { # unsigned domain, MX host in a signed zone with TLSA
  zone dns-mx-insecure-host-tlsa.example "knot a"
  rr "@ MX 10 mx.hosts-signed.$TLD."
  publish
  local h=mx.hosts-signed.example
  zone hosts-signed.example "knot a"
  rr "mx A $(v4 52)"
  hostcert "$h"
  pf "$(v4 52)" "$h" "$PKI/$h.rsa.pem"
  tlsa mx "$(ee "$PKI/$h.rsa.crt")" "$(ta)"
  finish
}

# =============================== DNSSEC and nameserver hygiene =======================
# Chains that validate today but are fragile: each passes, with a finding.
s_dns_alg7_nsec3() { # RSASHA1-NSEC3-SHA1 (algorithm 7) keys, NSEC3 (0 iterations, no salt)
  std dns-alg7-nsec3.example "a b" 78
  tlsa mx "$(ee)" "$(ta)"
  ALG=NSEC3RSASHA1 KEYBITS=2048 NSEC3=1 finish
}
s_dns_alg5_nsec() { # RSASHA1 (algorithm 5) keys, NSEC
  std dns-alg5-nsec.example "a b" 55
  tlsa mx "$(ee)" "$(ta)"
  ALG=RSASHA1 KEYBITS=2048 finish
}
s_dns_ds_sha1() { # the DS at example. has digest type 1 (SHA-1) only
  std dns-ds-sha1.example "a b" 56
  tlsa mx "$(ee)" "$(ta)"
  DSDIGEST=1 finish
}
s_dns_rsa1024() { # RSASHA256 with 1024-bit KSK and ZSK
  std dns-rsa1024.example "a b" 57
  tlsa mx "$(ee)" "$(ta)"
  ALG=RSASHA256 KEYBITS=1024 finish
}
s_dns_nsec3_iterations() { # NSEC3 with a salt and 10 extra iterations (ECDSA keys)
  std dns-nsec3-iterations.example "a b" 58
  tlsa mx "$(ee)" "$(ta)"
  NSEC3=1 N3SALT=aabbccdd N3ITER=10 finish
}
s_dns_ns_drops_dnskey() { # ns-dropk (nsd-b) drops DNSKEY queries on both families; ns-a answers
  std dns-ns-drops-dnskey.example "a dropk" 59
  tlsa mx "$(ee)" "$(ta)"
  finish
}
s_dns_ns_no_tcp() { # ns-notcp (nsd-b) refuses TCP; the TLSA RRset needs it (about 1300 octets)
  std dns-ns-no-tcp.example "a notcp" 77
  leaf "$H.old" rsa int 825 "$H" # retired by an earlier rollover, its records left behind
  local full
  full=$(openssl x509 -in "$C.old.crt" -outform DER | od -An -v -tx1 | tr -d ' \n' | fold -w 64 | paste -sd' ' -)
  tlsa mx "$(ee)" "$(ta)" "$(ee "$C.old.crt")" "3 1 2 $(spki512 "$C.old.crt")"
  rr "_25._tcp.mx TLSA 3 0 0 $full"
  finish
}

# =============================== TLSA records ========================================
s_rec_usage1() { std rec-usage1.example "knot b" 60; tlsa mx "1 1 1 $(spki256 "$C.rsa.crt")"; finish; }
s_rec_usage0() {
  std rec-usage0.example "knot b" 61
  tlsa mx "0 0 1 $(cert256 "$PKI/ca.crt")" "$(ee)" "$(ta)"
  finish
}
s_rec_malformed() { # a 20-byte digest under matching type 1, and usage 4
  std rec-malformed.example "knot b" 62
  local d
  d=$(spki256 "$C.rsa.crt")
  tlsa mx "3 1 1 ${d:0:40}" "4 1 1 $d"
  finish
}
s_rec_wrong_selector() { std rec-wrong-selector.example "knot b" 63; tlsa mx "3 0 1 $(spki256 "$C.rsa.crt")"; finish; }
s_rec_wrong_encoding() { std rec-wrong-encoding.example "knot b" 64; tlsa mx "3 0 1 $(pem256 "$C.rsa.crt")"; finish; }
s_rec_wrong_usage() { std rec-wrong-usage.example "knot b" 65; tlsa mx "3 1 1 $(spki256 "$PKI/int.crt")"; finish; }
s_rec_ta_not_in_chain() { std rec-ta-not-in-chain.example "knot b" 66; tlsa mx "$(ta "$PKI/ca.crt")"; finish; }
s_rec_ta_isrg() { # the real ISRG Root X1 (Debian ca-certificates), which this server never sends
  std rec-ta-isrg.example "knot b" 67
  tlsa mx "$(ta "$ISRG_X1")"
  finish
}
s_rec_le_issuer_pin() { # 3 1 1 + 2 1 1 of Let's Encrypt R12 (real certificate, not served here)
  std rec-le-issuer-pin.example "knot b" 76
  tlsa mx "$(ee)" "$(ta "$REPO/testdata/testbed/letsencrypt-R12.pem")"
  finish
}
s_rec_ta_chain_invalid() { # leaf from the other CA, sent with our intermediate, 2 1 1 on ours
  bare rec-ta-chain-invalid.example "knot b" "$(v4 68)"
  leaf "$H.other" rsa int2 825 "$H"
  cat "$C.other.key" "$C.other.crt" "$PKI/int.crt" >"$C.bad-chain.pem"
  pf "$(v4 68)" "$H" "$C.bad-chain.pem"
  tlsa mx "$(ta)"
  finish
}
s_rec_ta_expired() { # 2 1 1 on a valid CA; below it an intermediate that expired 10 days ago
  bare rec-ta-expired.example "knot b" "$(v4 69)"
  leaf "$H.rsa" rsa int-expired-inner 825 "$H"
  cat "$PKI/int-outer.crt" >>"$C.rsa.pem" # key, leaf, expired inner CA, outer CA (the TA)
  pf "$(v4 69)" "$H" "$C.rsa.pem"
  tlsa mx "$(ta "$PKI/int-outer.crt")"
  finish
}
s_rec_ta_anchor_expired() { # 2 1 1 on the issuing CA itself, which expired 10 days ago
  bare rec-ta-anchor-expired.example "knot b" "$(v4 75)"
  leaf "$H.rsa" rsa int-expired 825 "$H"
  pf "$(v4 75)" "$H" "$C.rsa.pem"
  tlsa mx "$(ta "$PKI/int-expired.crt")"
  finish
}
s_rec_ta_expired_leaf() { # leaf expired 30 days ago, 2 1 1 on its (valid) issuer
  bare rec-ta-expired-leaf.example "knot b" "$(v4 70)"
  leaf "$H.rsa" rsa int expired "$H"
  pf "$(v4 70)" "$H" "$C.rsa.pem"
  tlsa mx "$(ta)"
  finish
}
s_rec_ta_name_mismatch() { # the leaf names another host; 2 1 1 on its issuer
  bare rec-ta-name-mismatch.example "knot b" "$(v4 71)"
  leaf "$H.rsa" rsa int 825 not-the-mx.example.net
  pf "$(v4 71)" "$H" "$C.rsa.pem"
  tlsa mx "$(ta)"
  finish
}
s_rec_301_short_lived() { # 3 0 1 on a 90-day leaf (+ 2 1 1, so the host still has a backup)
  bare rec-301-short-lived.example "knot b" "$(v4 72)"
  leaf "$H.rsa" rsa int 90 "$H"
  pf "$(v4 72)" "$H" "$C.rsa.pem"
  tlsa mx "3 0 1 $(cert256 "$C.rsa.crt")" "$(ta)"
  finish
}
s_rec_stale() { # the old key's 3 1 1 left behind after a rollover, next to the current one
  std rec-stale.example "knot b" 73
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$C.old.key" 2>/dev/null
  tlsa mx "3 1 1 $(keyspki256 "$C.old.key")" "$(ee)"
  finish
}
s_rec_expired_ee() { # leaf expired 30 days ago under 3 1 1: DANE-EE ignores expiry
  bare rec-expired-ee.example "knot b" "$(v4 74)"
  leaf "$H.rsa" rsa int expired "$H"
  pf "$(v4 74)" "$H" "$C.rsa.pem"
  tlsa mx "$(ee)"
  finish
}

# =============================== SMTP and TLS ========================================
s_smtp_no_starttls() {
  bare smtp-no-starttls.example "knot a" "$(v4 80)"
  hostcert "$H"
  pf "$(v4 80)" "$H" - smtpd_tls_security_level=none
  tlsa mx "$(ee)" "$(ta)"
  finish
}
s_smtp_starttls_454() { std_peer smtp-starttls-454.example 81 starttls-454; tlsa mx "$(ee)" "$(ta)"; finish; }
s_smtp_handshake_failed() { # only TLS 1.0/1.1 allowed: OpenSSL 3 refuses them at its default level
  bare smtp-handshake-failed.example "knot a" "$(v4 82)"
  hostcert "$H"
  pf "$(v4 82)" "$H" "$C.rsa.pem" "smtpd_tls_protocols=<=TLSv1.1" "smtpd_tls_mandatory_protocols=<=TLSv1.1"
  tlsa mx "$(ee)" "$(ta)"
  finish
}
s_smtp_unreachable() { # the address exists, nothing listens: connection refused
  bare smtp-unreachable.example "knot a" "$(v4 83)"
  hostcert "$H"
  closed "$(v4 83)"
  tlsa mx "$(ee)" "$(ta)"
  finish
}
s_smtp_421() { std_peer smtp-421.example 84 greeting-421; tlsa mx "$(ee)" "$(ta)"; finish; }
s_smtp_addresses_disagree() { # IPv4 serves the published key, IPv6 a chain from another CA
  std smtp-addresses-disagree.example "knot a" 85
  leaf "$H.other" rsa int2 825 "$H"
  rr "mx AAAA $(v6 85)"
  pf "$(v6 85)" "$H" "$C.other.pem"
  tlsa mx "$(ee)" "$(ta)"
  finish
}
s_smtp_tarpit() { std_peer smtp-tarpit.example 86 tarpit; tlsa mx "$(ee)" "$(ta)"; finish; }
s_smtp_endless_multiline() { std_peer smtp-endless-multiline.example 87 endless-multiline; tlsa mx "$(ee)" "$(ta)"; finish; }
s_smtp_huge_line() { std_peer smtp-huge-line.example 88 huge-line; tlsa mx "$(ee)" "$(ta)"; finish; }
s_smtp_not_smtp() { std_peer smtp-not-smtp.example 89 not-smtp; tlsa mx "$(ee)" "$(ta)"; finish; }
s_smtp_garbage_after_starttls() { std_peer smtp-garbage-after-starttls.example 90 garbage-after-starttls tls; tlsa mx "$(ee)" "$(ta)"; finish; }
s_smtp_close_mid_handshake() { std_peer smtp-close-mid-handshake.example 91 close-mid-handshake; tlsa mx "$(ee)" "$(ta)"; finish; }
s_smtp_silent() { std_peer smtp-silent.example 92 silent; tlsa mx "$(ee)" "$(ta)"; finish; }
# The MX host at a special-purpose address, with a healthy listener there: check connects and
# passes; serve refuses to connect without --allow-private (tests/serve_testbed.rs counts packets).
s_smtp_mx_loopback() { # 127.0.0.1 (loopback, RFC 1122)
  bare smtp-mx-loopback.example "knot a" 127.0.0.1
  hostcert "$H"
  pf 127.0.0.1 "$H" "$C.rsa.pem"
  tlsa mx "$(ee)" "$(ta)"
  finish
}
s_smtp_mx_private() { # 10.0.0.1 (private use, RFC 1918), on the namespace's lo
  bare smtp-mx-private.example "knot a" 10.0.0.1
  hostcert "$H"
  pf 10.0.0.1 "$H" "$C.rsa.pem"
  tlsa mx "$(ee)" "$(ta)"
  finish
}

s_smtp_legacy_tls1() { # TLS 1.0 only at @SECLEVEL=0 (CBC suites): only legacy senders negotiate; 3 1 1 + 2 1 1 match
  legacy_pf smtp-legacy-tls1.example 93
  tlsa mx "$(ee)" "$(ta)"
  finish
}
s_smtp_legacy_nomatch() { # the same TLS 1.0-only server; the only record is for another key
  legacy_pf smtp-legacy-nomatch.example 94
  tlsa mx "$(ee "$C.ec.crt")"
  finish
}
# legacy_pf DOMAIN N: a Postfix listener that speaks TLS 1.0 only, with OpenSSL's security
# level 0 (which TLS 1.0 needs in OpenSSL 3), serving the RSA chain
legacy_pf() {
  bare "$1" "knot a" "$(v4 "$2")"
  hostcert "$H"
  pf "$(v4 "$2")" "$H" "$C.rsa.pem" "smtpd_tls_protocols=<=TLSv1" "smtpd_tls_mandatory_protocols=<=TLSv1" \
    "tls_medium_cipherlist=DEFAULT:@SECLEVEL=0"
}

# =============================== key types (issue 14) ===================================
# dual DOMAIN N: one Postfix listener with an RSA (smtpd_tls_cert_file) and an ECDSA
# (smtpd_tls_eccert_file) certificate, each with the intermediate: a sender gets one or
# the other depending on the signature algorithms it offers.
dual() {
  bare "$1" "knot a" "$(v4 "$2")"
  hostcert "$H"
  pf "$(v4 "$2")" "$H" - "smtpd_tls_cert_file=$C.rsa.pem" "smtpd_tls_eccert_file=$C.ec.pem"
}
s_kt_ec_only() { dual kt-ec-only.example 110; tlsa mx "$(ee "$C.ec.crt")"; finish; }
s_kt_311_each() { dual kt-311-each.example 111; tlsa mx "$(ee)" "$(ee "$C.ec.crt")"; finish; }
s_kt_211() { dual kt-211.example 112; tlsa mx "$(ta)"; finish; }

# =============================== preflight (certificate rollover) ====================
# The next certificate of each MX host is written to the PKI as $PKI/mx.<domain>.next.key,
# .crt (the leaf alone) and .pem (key, leaf, issuing intermediate): what an operator
# passes to "dane-audit preflight --cert" before deploying it.
next_cert() { leaf "$H.next" ec int 825 "${1:-$H}"; } # [SAN]
s_pre_ready() { # current + next key (not served yet) + 2 1 1, TTL 5 s: the swap is safe once aged
  std pre-ready.example "knot a" 100
  next_cert
  rr "_25._tcp.mx 5 TLSA $(ee)" "_25._tcp.mx 5 TLSA $(ee "$C.next.crt")" "_25._tcp.mx 5 TLSA $(ta)"
  finish
}
s_pre_next_missing() { # only the current key's 3 1 1: the next certificate is not published
  std pre-next-missing.example "knot a" 101
  next_cert
  tlsa mx "$(ee)"
  finish
}
s_pre_stale_secondary() { # ns-a (serial S): current + next; ns-b (serial S-1): current + a retired key
  std pre-stale-secondary.example "a b" 102
  next_cert
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$C.retired.key" 2>/dev/null
  tlsa mx "$(ee)"
  sed "s/ $ZSERIAL / $((ZSERIAL - 1)) /" "$ZF" >"$Z/$ZN.old.zone"
  echo "_25._tcp.mx TLSA 3 1 1 $(keyspki256 "$C.retired.key")" >>"$Z/$ZN.old.zone"
  tlsa mx "$(ee "$C.next.crt")"
  IN=$Z/$ZN.old.zone OUT=$Z/$ZN.old.signed sign
  sign
  publish_on nsd-a "$Z/$ZN.signed"
  publish_on nsd-b "$Z/$ZN.old.signed"
}
s_pre_ta_chain_missing() { # 2 1 1 only; next.crt is the leaf without its issuer (next.pem has it)
  std pre-ta-chain-missing.example "knot a" 103
  next_cert
  tlsa mx "$(ta)"
  finish
}
s_pre_ta_misnamed() { # 3 1 1 + 2 1 1; the next certificate (same CA) names another host
  std pre-ta-misnamed.example "knot a" 104
  next_cert mail.pre-ta-misnamed.example
  tlsa mx "$(ee)" "$(ta)"
  finish
}
s_pre_swapped() { # after the swap: the new key is served; the old key's 3 1 1 is still published
  std pre-swapped.example "knot a" 105
  leaf "$H.old" ec int 825 "$H"
  tlsa mx "$(ee "$C.old.crt")" "$(ee)" "$(ta)"
  finish
}
