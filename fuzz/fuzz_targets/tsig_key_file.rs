//! See `dane_audit::fuzz::tsig_key_file`: the body is shared with the regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dane_audit::fuzz::tsig_key_file(data));
