//! DNS evidence collector (RFC 7672 §2): MX, A/AAAA, TLSA with in-process DNSSEC validation, per-nameserver checks.
