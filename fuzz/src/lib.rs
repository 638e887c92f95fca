//! The fuzz targets' checks, kept out of the targets so that the main crate's tests
//! (`tests/fuzz_smoke.rs`, `tests/fuzz_regressions.rs`) compile and run the very same code.

pub mod checks;
