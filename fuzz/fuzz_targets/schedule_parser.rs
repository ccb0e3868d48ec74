//! Fuzzes the schedule parser: no input may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = isospec::schedule::parse("fuzz_schedule", text);
    }
});
