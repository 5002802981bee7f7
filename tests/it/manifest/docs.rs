//! `integrations/README.md` is the manifest reference. Its examples marked
//! `# validates` must validate, and it must document every diagnostic code the
//! corpus exercises and every template variable.

use ferry_core::manifest::{self, checks};

use super::{manifests_dir, repo_root, yaml_files};

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("integrations/README.md")).expect("integrations/README.md")
}

/// The ```yaml blocks whose first line is `# validates`, with the line each starts on.
fn validating_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<&str>)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => current = Some((i + 2, Vec::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                let (start, lines) = current.take().unwrap_or_default();
                if lines.first().is_some_and(|l| l.trim() == "# validates") {
                    blocks.push((start, lines.join("\n") + "\n"));
                }
            }
            Some((_, lines)) => lines.push(line),
        }
    }
    blocks
}

#[test]
fn every_example_marked_validates_validates() {
    let markdown = readme();
    let blocks = validating_blocks(&markdown);
    assert!(blocks.len() >= 2, "expected the annotated example and the Pandium one, found {}", blocks.len());
    let mut report = Vec::new();
    for (start, block) in &blocks {
        if let Err(diagnostics) = manifest::parse("README.md", block) {
            for d in diagnostics {
                // Lines as in the README, so the failure points at the right place.
                report.push(format!("README.md:{}:{}: {} [{}]", start + d.line - 1, d.column, d.message, d.code));
            }
        }
    }
    assert!(report.is_empty(), "README examples that do not validate:\n{}", report.join("\n"));
}

#[test]
fn the_block_extractor_finds_only_marked_blocks() {
    let md = "# x\n```yaml\n# validates\nrun: a\n```\n```yaml\nnot: marked\n```\n```sh\n# validates\n```\n";
    assert_eq!(validating_blocks(md), vec![(3, "# validates\nrun: a\n".to_owned())]);
}

#[test]
fn every_diagnostic_code_in_the_corpus_is_documented() {
    let markdown = readme();
    let mut codes: Vec<String> = yaml_files(&manifests_dir("broken"))
        .iter()
        .flat_map(|p| {
            let source = std::fs::read_to_string(p).expect("readable");
            source
                .lines()
                .take_while(|l| l.starts_with("# expect:"))
                .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    codes.sort();
    codes.dedup();
    let missing: Vec<&String> = codes.iter().filter(|c| !markdown.contains(&format!("| `{c}` |"))).collect();
    assert!(missing.is_empty(), "codes missing from the README's table of diagnostic codes: {missing:?}");
}

#[test]
fn every_template_variable_is_documented() {
    let markdown = readme();
    let mut vars: Vec<&str> =
        checks::REQUEST_VARS.iter().chain(checks::RECORD_VARS).chain(checks::BATCH_VARS).copied().collect();
    vars.sort();
    vars.dedup();
    let missing: Vec<&&str> = vars.iter().filter(|v| !markdown.contains(&format!("`{v}`"))).collect();
    assert!(missing.is_empty(), "template variables missing from the README: {missing:?}");
}
