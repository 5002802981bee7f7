//! A problem in a manifest: where it is, a stable code, and how to fix it.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Diagnostic {
    /// The manifest file, as given to the validator.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Stable class of problem, e.g. `unknown_key`, `wrong_type`, `dangling_ref`.
    pub code: String,
    pub message: String,
    /// A suggestion, e.g. "did you mean `connectors`?".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// JSON pointer of the offending value (`/flows/0/source/connector`).
    pub path: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {} [{}]", self.file, self.line, self.column, self.message, self.code)?;
        if let Some(h) = &self.help {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Suggests the closest of `candidates` to `word`, if one is close enough.
/// Jaro-Winkler catches long near-misses; an edit distance of one catches the
/// short ones it misses, such as swapped letters (`cvs` for `csv`).
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let lower = c.to_lowercase();
            let edits = strsim::osa_distance(&word, &lower);
            let similarity = strsim::jaro_winkler(&word, &lower);
            let close = similarity >= 0.8 || (edits <= 1 && word.chars().count() >= 3);
            close.then_some((edits, similarity, c))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| format!("did you mean `{c}`?"))
}

/// Renders a JSON pointer as a dotted path for messages (`flows[0].source`).
pub fn display_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in super::yaml::pointer_segments(pointer) {
        match seg {
            super::yaml::Segment::Index(i) => out.push_str(&format!("[{i}]")),
            super::yaml::Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&k);
            }
        }
    }
    if out.is_empty() {
        "the manifest".to_owned()
    } else {
        out
    }
}
