//! Every configuration example in the docs is a tested file: each fenced `hcl` block in the
//! operator docs must follow a `<!-- example: PATH -->` marker and equal that file byte for byte,
//! as must each `yaml` or `json` block that carries such a marker, and every file under
//! docs/examples/ must be shown somewhere. `make test-manifests` plans each `.tfvars` example with the environment and
//! runs the upstream conformance checks on the result; `make test-doc-examples` validates each
//! `.yaml` example against Kubernetes' schemas and the CRDs the plan delivers.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The operator-facing Markdown files (the contract copies in docs/contract are upstream text).
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![
        root().join("README.md"),
        root().join("terraform/environments/ha/README.md"),
        root().join("helm/ffe-backend/README.md"),
    ];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `(marker path or None, block text, line)` of every fenced block with the given info string.
fn blocks(text: &str, info: &str) -> Vec<(Option<String>, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == format!("```{info}") {
            let marker = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| {
                    l.trim()
                        .strip_prefix("<!-- example: ")
                        .and_then(|r| r.strip_suffix(" -->"))
                })
                .map(str::to_string);
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim() != "```" {
                end += 1;
            }
            let mut body = lines[start..end].join("\n");
            body.push('\n');
            out.push((marker, body, start));
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn every_hcl_example_in_the_docs_is_a_tested_file() {
    let mut shown = Vec::new();
    let mut problems = Vec::new();
    for doc in doc_files() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let hcl = blocks(&text, "hcl").into_iter().map(|b| ("hcl", b));
        // YAML and JSON blocks without a marker are fragments (values, snippets); marked ones
        // are files.
        let marked = |info: &'static str| {
            blocks(&text, info)
                .into_iter()
                .filter(|b| b.0.is_some())
                .map(move |b| (info, b))
        };
        for (_, (marker, body, line)) in hcl.chain(marked("yaml")).chain(marked("json")) {
            let Some(path) = marker else {
                problems.push(format!(
                    "{}:{line}: hcl example without `<!-- example: docs/examples/NAME.tfvars -->`: \
                     move it into docs/examples/ so make test-manifests plans it",
                    doc.display()
                ));
                continue;
            };
            match std::fs::read_to_string(root().join(&path)) {
                Ok(file) if file == body => shown.push(path),
                Ok(_) => problems.push(format!(
                    "{}:{line}: the block differs from {path}: copy the file into the doc",
                    doc.display()
                )),
                Err(e) => problems.push(format!("{}:{line}: {path}: {e}", doc.display())),
            }
        }
    }
    for entry in std::fs::read_dir(root().join("docs/examples")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let path = format!("docs/examples/{name}");
        if !shown.contains(&path) {
            problems.push(format!("{path} is not shown in any doc"));
        }
    }
    assert!(!shown.is_empty(), "no documented example found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn block_parser_finds_markers() {
    let text = "x\n<!-- example: a.tfvars -->\n```hcl\na = 1\n```\n\n```hcl\nb = 2\n```\n";
    let found = blocks(text, "hcl");
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].0.as_deref(), Some("a.tfvars"));
    assert_eq!(found[0].1, "a = 1\n");
    assert_eq!(found[1].0, None);
}
