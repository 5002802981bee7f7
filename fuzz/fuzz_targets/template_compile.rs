//! Template compilation on arbitrary, long and deep sources: every template
//! either is refused by the limits (engine/template_limits.rs) or compiles,
//! renders and is validated without panicking or overflowing the stack of a
//! worker thread (run here on a thread with half a tokio worker's stack).
//!
//! Inputs are short recipes that expand into long sources, so libFuzzer reaches
//! chains of thousands of links without writing them out: a 0x00 byte followed
//! by a count byte `n` and a length byte `l` repeats the next `l` bytes `n * 64`
//! times; every other byte is copied as it is.
#![no_main]

use libfuzzer_sys::fuzz_target;

use ferry_engine::template::Templates;
use ferry_core::template_limits;
use ferry_core::manifest::checks;

/// Sources larger than this are only checked for size.
const MAX_EXPANDED: usize = 256 * 1024;

/// Half the 2 MiB stack of a tokio or rayon worker.
const STACK: usize = 1024 * 1024;

fn expand(recipe: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < recipe.len() && out.len() < MAX_EXPANDED {
        match recipe[i..] {
            [0, n, l, ref rest @ ..] => {
                let piece = &rest[..(l as usize).min(rest.len())];
                for _ in 0..(n as usize) * 64 {
                    out.extend_from_slice(piece);
                    if out.len() >= MAX_EXPANDED {
                        break;
                    }
                }
                i += 3 + piece.len();
            }
            _ => {
                out.push(recipe[i]);
                i += 1;
            }
        }
    }
    out
}

fn exercise(source: &str) {
    let templates = Templates::new();
    let ctx = minijinja::Value::from_serialize(serde_json::json!({"record": {"a": "b", "n": 3, "items": [1, 2]}}));
    // The engine's path: check, compile, render (errors are fine, crashes are not).
    let _ = templates.prepare(source).render(&ctx);
    let _ = templates.prepare_condition(source).is_true(&ctx);
    // The validation path of manifests, mapping configurations and inline job mappings.
    let mut findings = Vec::new();
    checks::check_template(source, "/x", checks::RECORD_VARS, &mut findings);
    checks::check_expression(source, "/x", checks::RECORD_VARS, &mut findings);
    for f in &findings {
        assert!(!f.message.is_empty(), "a finding without a message");
    }
    if let Err(e) = template_limits::check_template(source) {
        assert!(e.line >= 1 && e.column >= 1, "{e}");
        assert!(e.line <= source.split('\n').count(), "{e}: line outside the template");
    }
}

fuzz_target!(|recipe: &[u8]| {
    let source = String::from_utf8_lossy(&expand(recipe)).into_owned();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || exercise(&source))
        .expect("thread")
        .join()
        .expect("no panic");
});
