#!/bin/sh
# certbot --pre-hook / --deploy-hook companion: refuse to install a renewed
# certificate while DANE senders would reject it. Installed as
# /etc/letsencrypt/renewal-hooks/deploy/00-dane-preflight.sh it runs after a
# renewal, before the hooks that install the certificate (hooks run in
# lexical order); a non-zero exit stops the hooks that follow.
#
# It waits (up to two hours) until the new key's TLSA record is on every
# authoritative server and older than TTL + margin. Publish the record as
# soon as the new key exists (certbot --reuse-key keeps the key and needs no
# new record; `dane-audit tlsa --recommend` prints the records), or let
# `dane-audit rollover` do the publishing and the install (README).
set -eu
: "${RENEWED_LINEAGE:?run me as a certbot deploy hook}"
MAILDOMAIN=${DANE_MAIL_DOMAIN:-$(basename "$RENEWED_LINEAGE")}
exec dane-audit preflight "$MAILDOMAIN" \
    --cert "$RENEWED_LINEAGE/cert.pem" \
    --chain "$RENEWED_LINEAGE/chain.pem" \
    --key "$RENEWED_LINEAGE/privkey.pem" \
    --state "/var/lib/dane-audit/preflight-$MAILDOMAIN.json" \
    --wait --max-wait 2h
