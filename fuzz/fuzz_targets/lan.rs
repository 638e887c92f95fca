#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| btvod_fuzz::checks::lan(data));
