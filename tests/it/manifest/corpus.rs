//! Every file in `tests/manifests/broken/` states, in its leading
//! `# expect: LINE:COLUMN CODE [-- TEXT]` comments, exactly the problems the
//! validator must report: the same (line, column, code) multiset, no more, no
//! fewer. `TEXT`, when given, must appear in that diagnostic's message or help
//! (how a "did you mean" is pinned down).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ferry_core::manifest::{self, Diagnostic};

use super::{diagnostic_defects, manifests_dir, yaml_files};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expectation {
    line: usize,
    column: usize,
    code: String,
    text: Option<String>,
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} {}", self.line, self.column, self.code)?;
        if let Some(t) = &self.text {
            write!(f, " -- {t}")?;
        }
        Ok(())
    }
}

fn parse_expectation(line: &str) -> Result<Expectation, String> {
    let rest = line.strip_prefix("# expect:").ok_or("not an `# expect:` line")?.trim();
    let (head, text) = match rest.split_once(" -- ") {
        Some((h, t)) => (h.trim(), Some(t.trim().to_owned())),
        None => (rest, None),
    };
    let mut words = head.split_whitespace();
    let (position, code) = match (words.next(), words.next(), words.next()) {
        (Some(p), Some(c), None) => (p, c),
        _ => return Err(format!("`{line}`: expected `# expect: LINE:COLUMN CODE [-- TEXT]`")),
    };
    let (l, c) = position.split_once(':').ok_or_else(|| format!("`{position}` is not LINE:COLUMN"))?;
    let number = |s: &str| s.parse::<usize>().map_err(|_| format!("`{position}` is not LINE:COLUMN"));
    Ok(Expectation { line: number(l)?, column: number(c)?, code: code.to_owned(), text })
}

/// The leading `# expect:` lines; the first line of the file must be one.
fn expectations(source: &str) -> Result<Vec<Expectation>, String> {
    let header: Vec<&str> = source.lines().take_while(|l| l.starts_with("# expect:")).collect();
    if header.is_empty() {
        return Err("the first line must be an `# expect: LINE:COLUMN CODE` comment".into());
    }
    header.into_iter().map(parse_expectation).collect()
}

fn describe(d: &Diagnostic) -> String {
    let help = d.help.as_deref().map(|h| format!(" (help: {h})")).unwrap_or_default();
    format!("{}:{} {}: {}{help}", d.line, d.column, d.code, d.message)
}

/// The problems with one corpus file, as lines of a failure report.
fn check_file(name: &str, source: &str) -> Vec<String> {
    let expected = match expectations(source) {
        Ok(e) => e,
        Err(e) => return vec![e],
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| manifest::parse(name, source)));
    let diagnostics = match outcome {
        Err(_) => return vec!["the validator panicked".into()],
        Ok(Ok(_)) => return vec!["the validator accepted it".into()],
        Ok(Err(d)) => d,
    };
    let mut failures = Vec::new();
    for d in &diagnostics {
        for defect in diagnostic_defects(name, source, d) {
            failures.push(format!("diagnostic `{}` {defect}", describe(d)));
        }
    }
    let key = |line: usize, column: usize, code: &str| (line, column, code.to_owned());
    let mut want: BTreeMap<(usize, usize, String), usize> = BTreeMap::new();
    for e in &expected {
        *want.entry(key(e.line, e.column, &e.code)).or_default() += 1;
    }
    let mut got: BTreeMap<(usize, usize, String), usize> = BTreeMap::new();
    for d in &diagnostics {
        *got.entry(key(d.line, d.column, &d.code)).or_default() += 1;
    }
    if want != got {
        failures.push("reported problems differ from the `# expect:` lines".into());
        for e in &expected {
            let k = key(e.line, e.column, &e.code);
            if got.get(&k).copied().unwrap_or(0) < want[&k] {
                failures.push(format!("  missing:    {e}"));
            }
        }
        for d in &diagnostics {
            let k = key(d.line, d.column, &d.code);
            if want.get(&k).copied().unwrap_or(0) < got[&k] {
                failures.push(format!("  unexpected: {}", describe(d)));
            }
        }
    }
    for e in expected.iter().filter(|e| e.text.is_some()) {
        let text = e.text.as_deref().unwrap_or_default();
        let found = diagnostics.iter().any(|d| {
            (d.line, d.column, d.code.as_str()) == (e.line, e.column, e.code.as_str())
                && (d.message.contains(text) || d.help.as_deref().is_some_and(|h| h.contains(text)))
        });
        if !found && got.contains_key(&key(e.line, e.column, &e.code)) {
            let said: Vec<String> = diagnostics
                .iter()
                .filter(|d| (d.line, d.column, d.code.as_str()) == (e.line, e.column, e.code.as_str()))
                .map(describe)
                .collect();
            failures.push(format!("  `{e}`: no message or help says `{text}`; it said: {}", said.join(" | ")));
        }
    }
    failures
}

#[test]
fn every_broken_manifest_reports_exactly_its_expected_problems() {
    let files = yaml_files(&manifests_dir("broken"));
    assert!(files.len() >= 40, "the corpus shrank to {} files", files.len());
    let mut report = Vec::new();
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let well_named = name.len() > 3
            && name.as_bytes()[..2].iter().all(u8::is_ascii_digit)
            && name.as_bytes()[2] == b'-'
            && name
                .trim_end_matches(".yaml")
                .bytes()
                .skip(3)
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_named {
            report.push(format!("{name}: name it `NN-short-name.yaml`"));
        }
        let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        for failure in check_file(&name, &source) {
            report.push(format!("{name}: {failure}"));
        }
    }
    assert!(report.is_empty(), "the corpus and the validator disagree:\n{}", report.join("\n"));
}

#[test]
fn expectation_lines_are_parsed_strictly() {
    let e = parse_expectation("# expect: 3:5 unknown_key -- did you mean `base_url`?").expect("valid");
    assert_eq!(
        e,
        Expectation { line: 3, column: 5, code: "unknown_key".into(), text: Some("did you mean `base_url`?".into()) }
    );
    assert!(parse_expectation("# expect: 3 unknown_key").is_err());
    assert!(parse_expectation("# expect: 3:5").is_err());
    assert!(parse_expectation("# expect: 3:5 a b").is_err());
    assert!(expectations("version: 1.0\n# expect: 1:1 x\n").is_err(), "the expectation must come first");
}

#[test]
fn the_checker_notices_a_wrong_expectation() {
    let source = "# expect: 2:1 unknown_key\nconectors: []\nbase: node:20\nrun: node .\n";
    assert!(check_file("t.yaml", source).is_empty(), "{:?}", check_file("t.yaml", source));
    let wrong_column = source.replacen("2:1", "2:2", 1);
    assert!(!check_file("t.yaml", &wrong_column).is_empty());
    let missing = format!("{source}flows: 3\n");
    assert!(!check_file("t.yaml", &missing).is_empty(), "an extra problem must fail the file");
    let wrong_text = source.replacen("unknown_key", "unknown_key -- did you mean `flows`?", 1);
    assert!(!check_file("t.yaml", &wrong_text).is_empty());
}
