//! The docs link to one place per topic, so a moved file or a renamed heading breaks them: every relative link in
//! the repository's Markdown must name a file that exists and, with `#anchor`, a heading of that file (GitHub's
//! anchors: lower case, punctuation dropped, spaces as `-`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The Markdown files people read: the top level, docs/, and each component's README.
fn markdown_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !name.starts_with('.') && !["target", "node_modules", "__pycache__"].contains(&name.as_str()) {
                markdown_files(&path, found);
            }
        } else if name.ends_with(".md") {
            found.push(path);
        }
    }
}

/// GitHub's anchor for a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// `(target, line)` of every inline link `](target)` outside code fences and code spans.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut fenced = false;
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans may hold `](`, which is no link.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            found.push((after[..end].to_string(), n + 1));
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn every_relative_link_in_the_docs_reaches_a_file_and_a_heading() {
    let root = root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    assert!(files.iter().any(|f| f.ends_with("docs/reference.md")), "docs not found under {}", root.display());
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        for (target, line) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (path, fragment) = target.split_once('#').map_or((target.as_str(), None), |(p, f)| (p, Some(f)));
            let dest = if path.is_empty() { file.clone() } else { file.parent().expect("dir").join(path) };
            let here = format!("{}:{line}: {target}", file.strip_prefix(&root).unwrap_or(file).display());
            if !dest.exists() {
                broken.push(format!("{here} (no such file)"));
                continue;
            }
            if let Some(fragment) = fragment.filter(|_| dest.extension().is_some_and(|e| e == "md")) {
                let headings = anchors(&std::fs::read_to_string(&dest).expect("read"));
                if !headings.contains(fragment) {
                    broken.push(format!("{here} (no heading #{fragment})"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(anchor(" Status: conditions, reasons, events"), "status-conditions-reasons-events");
    assert_eq!(anchor(" `kubectl get` columns"), "kubectl-get-columns");
    assert_eq!(anchor(" 1. Writing a profile"), "1-writing-a-profile");
    assert_eq!(
        anchor("### Webhooks: load tests, gates and hooks (Flagger's contract)".trim_start_matches('#')),
        "webhooks-load-tests-gates-and-hooks-flaggers-contract"
    );
    let text = "see [a](x.md#b) and `[c](d)` and [e](#f)\n```\n[g](h)\n```\n";
    assert_eq!(links(text), vec![("x.md#b".to_string(), 1), ("#f".to_string(), 1)]);
}
