# shellcheck shell=bash
# SMTP: one private Postfix instance (one master.cf listener per scenario address) and one
# smtp_peer process (examples/smtp_peer.rs) for the misbehaviour Postfix cannot show.

SMTP_PEER_SRC=$REPO/examples/smtp_peer.rs
SMTP_PEER=${DANE_TESTBED_SMTP_PEER:-$REPO/target/debug/examples/smtp_peer}

# Build smtp_peer if it is missing or older than its source. "cargo build --example" also
# compiles the crate's library, which other people edit concurrently; if that does not
# build right now, compile the example alone in a scratch crate (same Cargo.lock pins).
smtp_peer_build() {
  [ -x "$SMTP_PEER" ] && [ "$SMTP_PEER" -nt "$SMTP_PEER_SRC" ] && return 0
  [ -n "${DANE_TESTBED_SMTP_PEER:-}" ] && die "DANE_TESTBED_SMTP_PEER=$SMTP_PEER is not executable"
  command -v cargo >/dev/null || die "cargo not found: cannot build $SMTP_PEER"
  say "  building smtp_peer (cargo build --example smtp_peer)"
  if (cd "$REPO" && cargo build -q --example smtp_peer 2>"$B/cache/smtp_peer-build.log"); then
    return 0
  fi
  warn "cargo build --example smtp_peer failed (see $B/cache/smtp_peer-build.log); building it standalone"
  local d=$B/cache/smtp_peer-standalone
  mkdir -p "$d/examples"
  cp "$SMTP_PEER_SRC" "$d/examples/"
  cp "$REPO/Cargo.lock" "$d/" 2>/dev/null || true
  : >"$d/lib.rs"
  cat >"$d/Cargo.toml" <<'EOF'
[package]
name = "smtp-peer-standalone"
version = "0.0.0"
edition = "2024"
publish = false
[lib]
path = "lib.rs"
[dependencies]
tokio = { version = "1", features = ["rt-multi-thread", "macros", "net", "io-util", "time"] }
rustls = { version = "0.23", default-features = false, features = ["ring", "std", "tls12", "logging"] }
tokio-rustls = { version = "0.26", default-features = false, features = ["ring", "tls12", "logging"] }
EOF
  (cd "$d" && cargo build -q --offline --example smtp_peer) || die "cannot build smtp_peer"
  SMTP_PEER=$d/target/debug/examples/smtp_peer
}

# ---- addresses ------------------------------------------------------------------------------
smtp_addrs() { # all SMTP addresses of all scenarios onto lo
  awk -F'\t' '{print $2}' "$FRAG"/*.smtp | sort -u | while read -r a; do
    case $a in *:*) echo "addr add $a/128 dev lo" ;; *) echo "addr add $a/32 dev lo" ;; esac
  done | ip -n "$NS" -batch - || die "adding SMTP addresses failed"
}

# ---- Postfix ----------------------------------------------------------------------------------
# The first "postfix check" on a new spool takes 2-3 s (it creates the queue directories):
# postfix_prepare runs it early, in the background, with the final main.cf.
postfix_prepare() {
  local P=$B/postfix
  mkdir -p "$P/etc" "$P/spool" "$P/data" "$P/log"
  chown postfix:postfix "$P/data"
  chmod 700 "$P/data"
  cat >"$P/etc/main.cf" <<EOF
# private instance for the dane-audit test bed (testbed-recipes.md section 4)
compatibility_level = 3.7
queue_directory = $P/spool
data_directory = $P/data
mail_owner = postfix
setgid_group = postdrop
myhostname = testbed-postfix.invalid
mydestination =
inet_interfaces = loopback-only
inet_protocols = all
alias_maps =
alias_database =
maillog_file = $P/log/maillog
maillog_file_prefixes = $P/log
smtpd_peername_lookup = no
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtp_dns_support_level = dnssec
smtp_tls_security_level = dane
EOF
  postfix_services >"$P/etc/master.cf"
  # "postfix" prints its errors only to a tty: script(1) provides one (recipes 4.3)
  script -qec "${X[*]} postfix -c $P/etc check" /dev/null >"$P/log/check.log" 2>&1 ||
    { cat "$P/log/check.log" >&2; die "postfix check failed"; }
}

postfix_services() {
  cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# master.cf: one smtpd listener per "pf" fragment line (own chain, myhostname, -o settings)
postfix_conf() {
  local kind a h c o svc opt
  {
    echo "# service              type  private unpriv chroot wakeup maxproc command + args"
    while IFS=$'\t' read -r kind a h c o; do
      [ "$kind" = pf ] || continue
      case $a in *:*) svc="[$a]:smtp" ;; *) svc="$a:smtp" ;; esac
      printf '%s inet n - n - - smtpd\n  -o myhostname=%s\n' "$svc" "$h"
      [ "$c" != - ] && printf '  -o smtpd_tls_chain_files=%s\n' "$c"
      for opt in $o; do printf '  -o %s\n' "$opt"; done
    done < <(cat "$FRAG"/*.smtp)
    postfix_services
  } >"$B/postfix/etc/master.cf"
}

postfix_up() {
  postfix_conf
  script -qec "${X[*]} postfix -c $B/postfix/etc start" /dev/null >"$B/postfix/log/start.log" 2>&1 9>&- ||
    { cat "$B/postfix/log/start.log" >&2; die "postfix start failed"; }
}

# ---- smtp_peer ---------------------------------------------------------------------------------
smtp_peer_up() {
  local args=() kind a h m t
  while IFS=$'\t' read -r kind a h m t; do
    [ "$kind" = peer ] || continue
    case $a in *:*) a="[$a]" ;; esac
    args+=(--listen "$a:25" --mode "$m" --name "$h")
    [ -n "$t" ] && args+=(--tls "$t")
  done < <(cat "$FRAG"/*.smtp)
  [ ${#args[@]} -gt 0 ] || return 0
  mkdir -p "$B/smtp_peer"
  # shellcheck disable=SC2016 # expanded by that sh
  setsid -f "${X[@]}" sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$B/smtp_peer/smtp_peer.pid" \
    "$SMTP_PEER" "${args[@]}" </dev/null >"$B/smtp_peer/smtp_peer.log" 2>&1 9>&-
}

# ---- readiness: a real greeting (an open port is not enough, recipes 4.3) ----------------------
banner_list() { # "ADDR EXPECTED-FIRST-4-BYTES" ("_" stands for a space)
  awk -F'\t' '
    $1 == "pf"   { print $2, "220_" }
    $1 == "peer" { w = "220_"
                   if ($4 == "greeting-421") w = "421_"
                   if ($4 == "not-smtp") w = "SSH-"
                   if ($4 == "tarpit" || $4 == "silent") w = "-"
                   print $2, w }' "$FRAG"/*.smtp
}

wait_banners() { # waits (up to $BANNER_WAIT s) for every listener; "-" = TCP connect is enough
  # shellcheck disable=SC2016 # the script runs in a bash inside the netns
  banner_list | "${X[@]}" bash -c '
    probe() { timeout 2 bash -c "exec 3<>/dev/tcp/\$0/25 || exit 1; [ \"\$1\" = - ] && exit 0
      IFS= read -r -N4 -t 2 b <&3; [ \"\$b\" = \"\$1\" ]" "$1" "$2" 2>/dev/null; }
    end=$((SECONDS + $0)) rc=0
    while read -r a w; do
      w=${w//_/ }
      until probe "$a" "$w"; do
        if [ $SECONDS -ge $end ]; then echo "testbed: no \"$w\" greeting on $a" >&2; rc=1; break; fi
        sleep 0.05
      done
    done
    exit $rc' "${BANNER_WAIT:-30}"
}
