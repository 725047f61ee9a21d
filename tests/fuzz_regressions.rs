//! Replays every input under `testdata/fuzz/<target>/` (seed corpora and
//! crashes the fuzzer found, named after the bug) through the fuzz target's
//! body: what once crashed stays fixed.

use std::path::Path;

#[test]
fn fuzz_inputs_replay_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz");
    let mut replayed = 0;
    for (name, body) in dane_audit::fuzz::TARGETS {
        let dir = root.join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "{name}: {} panics", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no fuzz inputs under {}", root.display());
}
