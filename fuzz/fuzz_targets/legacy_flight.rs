//! See `dane_audit::fuzz::legacy_flight`: the body is shared with the regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dane_audit::fuzz::legacy_flight(data));
