//! `manifest::parse` on arbitrary text: it must not panic, hang or overflow the
//! stack, and what it reports must point inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|source: &str| {
    if let Err(diagnostics) = ferry_core::manifest::parse("fuzz.yaml", source) {
        assert!(!diagnostics.is_empty(), "refused without saying why");
        let lines: Vec<&str> = source.split('\n').collect();
        for d in &diagnostics {
            assert!(!d.message.is_empty(), "{d}");
            assert!((1..=lines.len()).contains(&d.line), "{d}: line outside the input");
            let width = lines[d.line - 1].trim_end_matches('\r').chars().count();
            assert!((1..=width + 1).contains(&d.column), "{d}: column outside its line");
        }
    }
});
