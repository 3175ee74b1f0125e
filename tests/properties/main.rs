//! Property tests: what faces untrusted input never panics, and round trips hold, for
//! generated inputs (bounded case counts, so `make test` stays fast). `make fuzz` runs the
//! same targets coverage-guided for longer (see `fuzz/`).
//!
//! A failure prints the shrunk input; proptest also saves its seed under
//! `tests/properties/*.proptest-regressions` so the case is replayed first next time.

mod enrich;
mod events;
mod form;
mod signature;

/// Cases per property: enough to cover the shapes, few enough for a 2-core CI.
pub fn cases(n: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: n,
        // A regression file is written next to the failing test file, and read back.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..proptest::test_runner::Config::default()
    }
}
