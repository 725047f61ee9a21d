//! See `dane_audit::fuzz::evidence_eval`: the body is shared with the regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dane_audit::fuzz::evidence_eval(data));
