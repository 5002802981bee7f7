//! The parser on hostile input: thousands of mutants of the corpus files and a
//! few known attacks on YAML parsers. It must never panic, and must return
//! either a manifest or diagnostics that can be shown (see `fuzz/` for the
//! open-ended version with libFuzzer).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_core::manifest;

use super::{diagnostic_defects, manifests_dir, repo_root, yaml_files};

/// xorshift64*: deterministic, so a failure names a seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that matter to YAML, templates and JSON pointers.
const INTERESTING: &[u8] = b":-[]{},'\"#&*!|>?%@`\t\n\r ~/0123456789.{}$\\";

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            2 => out.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b));
                out.drain(a..b.min(a + 64));
            }
            4 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b).min(a + 256));
                let chunk = out[a..b].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, chunk);
            }
            5 => {
                // A line of another file, for plausible but misplaced structure.
                let other = &seeds[rng.below(seeds.len())];
                let lines: Vec<&[u8]> = other.split(|b| *b == b'\n').collect();
                let line = lines[rng.below(lines.len())].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, line.into_iter().chain([b'\n']));
            }
            6 if len > 0 => {
                let i = rng.below(len);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(i..i, std::iter::repeat_n(b, 1 + rng.below(8)));
            }
            _ => {
                // Re-indent a line, the commonest real mistake.
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(out.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1))
                    .collect();
                let at = starts[rng.below(starts.len())].min(out.len());
                if rng.below(2) == 0 {
                    out.splice(at..at, [b' '; 2]);
                } else if out.get(at) == Some(&b' ') {
                    out.remove(at);
                }
            }
        }
    }
    out
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = yaml_files(&manifests_dir("broken"));
    files.extend(yaml_files(&manifests_dir("pandium")));
    for entry in std::fs::read_dir(repo_root().join("integrations")).expect("integrations/") {
        let p = entry.expect("entry").path().join("PANDIUM.yaml");
        if p.is_file() {
            files.push(p);
        }
    }
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).expect("readable"))).collect()
}

/// What is wrong with the parser's answer to `source`, if anything.
fn verdict(source: &str) -> Option<String> {
    match catch_unwind(AssertUnwindSafe(|| manifest::parse("fuzz.yaml", source))) {
        Err(_) => Some("panicked".into()),
        Ok(Ok(_)) => None,
        Ok(Err(diagnostics)) if diagnostics.is_empty() => Some("refused it without a diagnostic".into()),
        Ok(Err(diagnostics)) => {
            let defects: Vec<String> = diagnostics
                .iter()
                .flat_map(|d| diagnostic_defects("fuzz.yaml", source, d).into_iter().map(move |x| format!("`{d}` {x}")))
                .collect();
            (!defects.is_empty()).then(|| defects.join("; "))
        }
    }
}

fn excerpt(source: &str) -> String {
    let s: String = source.chars().take(400).collect();
    format!("{s:?}{}", if source.chars().count() > 400 { "..." } else { "" })
}

#[test]
fn mutated_corpus_files_never_panic_and_always_explain_themselves() {
    let seeds = seeds();
    let bytes: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    let budget = Duration::from_secs(3);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut runs = 0usize;
    for case in 0..20_000u64 {
        if started.elapsed() > budget {
            break;
        }
        let seed = 0x9E37_79B9_7F4A_7C15 ^ case;
        let mut rng = Rng(seed.max(1));
        let (name, original) = &seeds[rng.below(seeds.len())];
        let mutant = mutate(&mut rng, &bytes, original);
        let source = String::from_utf8_lossy(&mutant);
        runs += 1;
        if let Some(problem) = verdict(&source) {
            failures.push(format!("case {case} (mutant of {name}): {problem}\n  input: {}", excerpt(&source)));
            if failures.len() >= 10 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{} failing mutant(s) of {runs}:\n{}", failures.len(), failures.join("\n"));
    assert!(runs >= 100, "only {runs} mutants ran in {budget:?}; the parser got very slow");
}

#[test]
fn known_attacks_on_yaml_parsers_are_refused_politely() {
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n".to_owned()
        + &(b'b'..=b'k')
            .map(|c| {
                let prev = (c - 1) as char;
                let c = c as char;
                format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 10].join(", "))
            })
            .collect::<String>();
    let cases: Vec<(&str, String)> = vec![
        ("billion laughs", laughs),
        ("deep flow nesting", format!("configs: {}{}", "[".repeat(300), "]".repeat(300))),
        ("deep block nesting", format!("flows: {}x\n", "- ".repeat(5000))),
        ("deep mappings", (0..500).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect()),
        ("deep JSON Schema", format!("configs:\n  schema: {}{}", "{not: ".repeat(60), "}".repeat(60))),
        ("many keys", (0..20_000).map(|i| format!("k{i}: {i}\n")).collect()),
        ("long line", format!("name: {}\n", "x".repeat(1_000_000))),
        ("NUL and control bytes", "version: \u{0}1.0\nrun: \u{7}\n".into()),
        ("byte order mark", "\u{feff}version: 1.0\nbase: node:20\nrun: node .\n".into()),
        ("CRLF", "version: 1.0\r\nbase: node:20\r\nrun: node .\r\nflows: 3\r\n".into()),
        ("lone CR", "version: 1.0\rbase: node:20\r".into()),
        ("unterminated quote", "run: 'node .\n".into()),
        ("only a comment", "# nothing\n".into()),
        ("only whitespace", "   \n\n\t\n".into()),
        ("nothing", String::new()),
        ("tags", "!!binary run: !!int x\nbase: !custom node\n".into()),
        ("directives", "%YAML 1.2\n%TAG ! tag:x,2000:\n---\nrun: x\n".into()),
        ("wide characters", "名前: ポケモン\nrun: 😀\nbase: 🦀:1\n".into()),
        ("template bomb", format!("flows:\n- name: a\n  source: {{type: webhook}}\n  target: {{type: file, format: csv, path: '{}'}}\nwebhooks: {{verify: {{type: api_key}}}}\n", "{{ ".repeat(10_000))),
        ("deep template", format!("flows:\n- name: a\n  source: {{type: webhook}}\n  target: {{type: file, format: csv, path: '{{{{ {}1{} }}}}'}}\nwebhooks: {{verify: {{type: api_key}}}}\n", "(".repeat(2000), ")".repeat(2000))),
        ("deep expression", format!("flows:\n- name: a\n  source: {{type: webhook, filter: '{}'}}\n  target: {{type: file, format: csv, path: x}}\nwebhooks: {{verify: {{type: api_key}}}}\n", "not ".repeat(5000) + "true")),
    ];
    let mut failures = Vec::new();
    for (what, source) in &cases {
        let started = Instant::now();
        if let Some(problem) = verdict(source) {
            failures.push(format!("{what}: {problem}"));
        }
        if started.elapsed() > Duration::from_secs(5) {
            failures.push(format!("{what}: took {:?}", started.elapsed()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_alias_bomb_is_refused_at_the_alias_that_explodes() {
    let source = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n".to_owned()
        + "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        + "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    let diagnostics = manifest::parse("bomb.yaml", &source).expect_err("refused");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].code, "yaml_syntax");
    assert!(diagnostics[0].message.contains("aliases"), "{}", diagnostics[0].message);
}

/// A flow whose mapping field `x` (line 6, value from column 10) is `template`.
fn manifest_mapping(template: &str) -> String {
    format!(
        "flows:\n- name: a\n  source: {{type: webhook}}\n  mapping:\n    fields:\n      x: '{template}'\n  \
         target: {{type: file, format: csv, path: x}}\nwebhooks: {{verify: {{type: api_key}}}}\n"
    )
}

#[test]
fn a_long_chain_in_a_manifest_template_fails_validation_at_its_line_and_column() {
    let chains = [
        format!("{{{{ 1{} }}}}", "+1".repeat(9_999)),
        format!("{{{{ record.name{} }}}}", "|lower".repeat(10_000)),
        format!("{{{{ record{} }}}}", ".a".repeat(10_000)),
        format!("{{{{ record.x{} }}}}", " and record.x".repeat(10_000)),
        format!("{{% if record.x{} %}}1{{% endif %}}", " or record.x".repeat(10_000)),
    ];
    for template in &chains {
        let what = &template[..20];
        let diagnostics = manifest::parse("chain.yaml", &manifest_mapping(template)).expect_err(what);
        let d = diagnostics
            .iter()
            .find(|d| d.code == "template_too_complex")
            .unwrap_or_else(|| panic!("{what}: no template_too_complex in {diagnostics:?}"));
        assert_eq!((d.line, d.column), (6, 10), "{what}: {d}");
        assert!(d.message.contains("line 1, column "), "{what}: the position in the template: {d}");
    }
    // The same field with a short chain is fine.
    let short = manifest_mapping(&format!("{{{{ 1{} }}}}", "+1".repeat(50)));
    assert!(manifest::parse("short.yaml", &short).is_ok(), "{:?}", manifest::parse("short.yaml", &short).err());
}

#[test]
fn an_alias_bomb_by_string_size_is_refused() {
    // 1,000 aliases of one 50 KB string: few nodes, 50 MB of text once expanded.
    let source = format!("name: &big '{}'\nlist: [{}]\n", "x".repeat(50_000), vec!["*big"; 1_000].join(", "));
    let diagnostics = manifest::parse("bomb.yaml", &source).expect_err("refused");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].code, "yaml_syntax");
    assert!(diagnostics[0].message.contains("bytes"), "{}", diagnostics[0].message);
    assert_eq!(diagnostics[0].line, 2, "{}", diagnostics[0]);
}
