# shellcheck shell=bash
# The bed's PKI: made fresh by every "up" (validity relative to now) with openssl.
#
# RSA-2048 key generation costs ~0.4 s per key on a small VM, and the bed needs ~80 RSA
# keys, so RSA *keys* are cached in $KEYCACHE (default $B/cache/keys, kept across "up"; delete
# it or set DANE_TESTBED_FRESH_KEYS=1 for new keys). Certificates, EC keys and everything
# else are new on every "up".

# openssl ca is used for every issued certificate because it takes explicit start and end
# dates (OpenSSL 3.0's "x509 -req" only knows "-days N from now", so no expired certs).
pki_ca_conf() {
  cat >"$PKI/ca.cnf" <<'EOF'
[ ca ]
default_ca = tb
[ tb ]
database = $ENV::TBDB/index.txt
new_certs_dir = $ENV::TBDB
serial = $ENV::TBDB/serial
default_md = sha256
policy = tb_policy
unique_subject = no
email_in_dn = no
copy_extensions = none
[ tb_policy ]
organizationName = optional
commonName = supplied
EOF
  cat >"$PKI/leaf.cnf" <<'EOF'
[ req ]
distinguished_name = dn
[ dn ]
[ leaf_rsa ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ leaf_ec ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
}

# Path of an RSA-2048 private key for NAME (cached across runs, see above).
rsakey() {
  local f=$KEYCACHE/$1.key
  if [ ! -s "$f" ] || [ -n "${DANE_TESTBED_FRESH_KEYS:-}" ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$f.tmp" 2>/dev/null ||
      die "RSA key generation failed for $1"
    mv "$f.tmp" "$f"
  fi
  echo "$f"
}

stamp() { date -u -d "$1" +%Y%m%d%H%M%SZ; }
serial() { printf '%04X%04X%04X%04X\n' $((RANDOM | 4096)) $RANDOM $RANDOM $RANDOM; }

# issue OUT.crt from OUT.csr: issue ID ISSUER START END EXTFILE|-
issue() {
  local id=$1 iss=$2 start=$3 end=$4 ext=$5 db
  db=$(mktemp -d "$PKI/tmp/ca.XXXXXX")
  : >"$db/index.txt"
  serial >"$db/serial"
  local args=(-config "$PKI/ca.cnf" -batch -notext -in "$PKI/tmp/$id.csr" -out "$PKI/$id.crt"
    -cert "$PKI/$iss.crt" -keyfile "$PKI/$iss.key" -startdate "$(stamp "$start")" -enddate "$(stamp "$end")")
  [ "$ext" != - ] && args+=(-extfile "$ext")
  TBDB=$db openssl ca "${args[@]}" >"$db/log" 2>&1 || { cat "$db/log" >&2; die "openssl ca failed for $id"; }
  rm -rf "$db"
}

ca_ext() { # pathlen
  printf '%s\n' "basicConstraints=critical,CA:TRUE${1:+,pathlen:$1}" "keyUsage=critical,keyCertSign,cRLSign" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid"
}

# Root CAs, intermediates and the openssl ca config. Serial: the leaves depend on these.
pki_base() {
  mkdir -p "$PKI/tmp" "$KEYCACHE"
  chmod 700 "$KEYCACHE"
  pki_ca_conf
  local k
  # key generation in parallel (only slow when the cache is cold)
  for k in ca int ca2 int2 int-expired int-outer int-expired-inner; do par rsakey "$k" >/dev/null; done
  par_wait
  for k in ca ca2; do
    cp "$(rsakey $k)" "$PKI/$k.key"
  done
  ca_ext >"$PKI/tmp/root.ext"
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/O=DANE testbed/CN=DANE Testbed Root CA" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/ca.crt" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca2.key" -subj "/O=Elsewhere/CN=Unrelated Other Root CA" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/ca2.crt" 2>/dev/null
  ca_ext 0 >"$PKI/tmp/int0.ext"
  ca_ext 1 >"$PKI/tmp/int1.ext"
  local id cn iss start end pl
  while read -r id iss pl start end cn; do
    cp "$(rsakey "$id")" "$PKI/$id.key"
    openssl req -new -key "$PKI/$id.key" -subj "/O=DANE testbed/CN=$cn" -out "$PKI/tmp/$id.csr" 2>/dev/null
    issue "$id" "$iss" "${start//@/ }" "${end//@/ }" "$PKI/tmp/int$pl.ext"
  done <<'EOF' # id issuer pathlen start end CN ("@" stands for a space in the dates)
int ca 0 1@day@ago 1825@days DANE Testbed Intermediate CA
int2 ca2 0 1@day@ago 1825@days Unrelated Other Intermediate CA
int-expired ca 0 400@days@ago 10@days@ago DANE Testbed Expired Intermediate CA
int-outer ca 1 1@day@ago 1825@days DANE Testbed Outer Intermediate CA
int-expired-inner int-outer 0 400@days@ago 10@days@ago DANE Testbed Expired Inner Intermediate CA
EOF
  spki256 "$PKI/int.crt" >"$PKI/int.spki256"
}

# leaf ID TYPE ISSUER VALIDITY SAN... -> $PKI/ID.{key,crt,pem}
#   TYPE rsa|ec; ISSUER a CA id made by pki_base, or v1self; VALIDITY days|expired
#   ID.pem is the Postfix chain file: key, leaf, then the issuing intermediate (if any).
leaf() {
  local id=$1 type=$2 iss=$3 val=$4 cn=$5 san s
  shift 4
  san=""
  for s in "$@"; do san+="${san:+,}DNS:$s"; done
  local key=(-key "$PKI/$id.key")
  case $type in
    rsa) cp "$(rsakey "$id")" "$PKI/$id.key" ;;
    ec) key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/$id.key") ;;
  esac
  if [ "$iss" = v1self ]; then
    # no extensions at all -> openssl writes an X.509 version 1 certificate
    openssl req -new "${key[@]}" -subj "/CN=$cn" -out "$PKI/tmp/$id.csr" 2>/dev/null
    openssl x509 -req -in "$PKI/tmp/$id.csr" -signkey "$PKI/$id.key" -days 825 -out "$PKI/$id.crt" 2>/dev/null
  elif [ "$val" = expired ]; then
    # back-dated: only "openssl ca" takes explicit dates
    openssl req -new "${key[@]}" -subj "/CN=$cn" -out "$PKI/tmp/$id.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature$([ "$type" = rsa ] && echo ,keyEncipherment)" \
      "extendedKeyUsage=serverAuth" "subjectAltName=$san" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$PKI/tmp/$id.ext"
    issue "$id" "$iss" "400 days ago" "30 days ago" "$PKI/tmp/$id.ext"
  else
    # one process: key (EC: new), request and signature (OpenSSL 3.0 "req -x509 -CA")
    openssl req -x509 -new "${key[@]}" -subj "/CN=$cn" -CA "$PKI/$iss.crt" -CAkey "$PKI/$iss.key" \
      -days "$val" -set_serial "0x$(serial)" -config "$PKI/leaf.cnf" -extensions "leaf_$type" \
      -addext "subjectAltName=$san" -out "$PKI/$id.crt" 2>"$PKI/tmp/$id.log" ||
      { cat "$PKI/tmp/$id.log" >&2; die "certificate $id failed"; }
  fi
  {
    cat "$PKI/$id.key" "$PKI/$id.crt"
    case $iss in ca | v1self) ;; *) cat "$PKI/$iss.crt" ;; esac
  } >"$PKI/$id.pem"
}

# The usual pair for an MX host: HOST.rsa and HOST.ec, 825 days, from the intermediate.
hostcert() { # HOST [extra SAN...]
  leaf "$1.rsa" rsa int 825 "$@"
  leaf "$1.ec" ec int 825 "$@"
}

# ---- TLSA association data -------------------------------------------------------------
# Certificates here are single-PEM files, so their DER is the base64 body (no openssl needed);
# the SPKI DER is the body of "openssl x509 -pubkey" (one openssl process).
hexout() { local h _; read -r h _; echo "$h"; }
spki_der() { openssl x509 -in "$1" -noout -pubkey | sed '/^-----/d' | base64 -d; }
cert_der() { sed '/^-----/d' "$1" | base64 -d; }
spki256() { spki_der "$1" | sha256sum | hexout; }
spki512() { spki_der "$1" | sha512sum | hexout; }
cert256() { cert_der "$1" | sha256sum | hexout; }
cert512() { cert_der "$1" | sha512sum | hexout; }
keyspki256() { openssl pkey -in "$1" -pubout | sed '/^-----/d' | base64 -d | sha256sum | hexout; }
# SHA-256 over the PEM *text* of a certificate file (the classic wrong-encoding mistake)
pem256() { sha256sum <"$1" | hexout; }
