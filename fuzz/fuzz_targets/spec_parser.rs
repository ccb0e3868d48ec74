//! Fuzzes the spec parser and checker: no input may panic, and every spec
//! that parses must print back to text that parses to the same spec.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = isospec::spec::parse("fuzz.spec", data) else { return };
    let printed = spec.to_string();
    let again = isospec::spec::parse("fuzz.spec", printed.as_bytes())
        .unwrap_or_else(|e| panic!("printed spec does not parse: {e}\n{printed}"));
    assert_eq!(again.to_string(), printed, "print/parse round trip changed the spec");
    if let Ok(checked) = isospec::spec::check("fuzz.spec", spec) {
        // Bounded look at the permutations (the count can be astronomical).
        let _ = checked.permutation_count();
        for p in checked.iter_permutations().take(50) {
            assert!(!p.is_empty());
        }
    }
});
