//! SMTP STARTTLS collector: greeting, EHLO, STARTTLS and the TLS handshake on every MX address.
