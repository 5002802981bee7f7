//! `ferry validate PATH`: a manifest file, an integration folder, or a folder of integrations.

use std::path::{Path, PathBuf};

use ferry_core::manifest::{self, Diagnostic};
use miette::{LabeledSpan, MietteDiagnostic, NamedSource, Report};

/// The manifests under `path`: the file itself, `<dir>/PANDIUM.yaml`, or `<dir>/*/PANDIUM.yaml`.
pub fn manifest_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let own = path.join("PANDIUM.yaml");
    if own.is_file() {
        return Ok(vec![own]);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let candidate = entry?.path().join("PANDIUM.yaml");
        if candidate.is_file() {
            found.push(candidate);
        }
    }
    found.sort();
    Ok(found)
}

/// Byte offset of a 1-based line and character column.
fn offset(source: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for (i, l) in source.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return start + l.char_indices().nth(column.saturating_sub(1)).map(|(b, _)| b).unwrap_or(l.len());
        }
        start += l.len();
    }
    source.len()
}

pub fn render(source: &str, d: &Diagnostic) -> Report {
    let at = offset(source, d.line, d.column);
    let len = source[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ':' | ',' | '}' | ']'))
        .map(char::len_utf8)
        .sum::<usize>()
        .max(1);
    let mut diag = MietteDiagnostic::new(d.message.clone())
        .with_code(format!("ferry::{}", d.code))
        .with_label(LabeledSpan::at(at..(at + len).min(source.len().max(at)), "here"));
    if let Some(h) = &d.help {
        diag = diag.with_help(h.clone());
    }
    Report::new(diag).with_source_code(NamedSource::new(d.file.clone(), source.to_owned()))
}

/// Validates every manifest under `path`; prints diagnostics; returns whether all are valid.
pub fn run(path: &Path, format_json: bool) -> anyhow::Result<bool> {
    let files = manifest_files(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if files.is_empty() {
        anyhow::bail!(
            "no PANDIUM.yaml found at {} (give a manifest file, an integration folder, or a folder of them)",
            path.display()
        );
    }
    let mut all_ok = true;
    let mut json = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let source = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
        match manifest::parse(&name, &source) {
            Ok(_) => {
                if !format_json {
                    eprintln!("ok: {name}");
                }
            }
            Err(diagnostics) => {
                all_ok = false;
                if format_json {
                    json.extend(diagnostics);
                } else {
                    for d in &diagnostics {
                        eprintln!("{:?}", render(&source, d));
                    }
                    eprintln!("{name}: {} problem(s)", diagnostics.len());
                }
            }
        }
    }
    if format_json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(all_ok)
}
