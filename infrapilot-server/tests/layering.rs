//! The import direction of the server's layers: the application layer (`ops`), the agent
//! endpoint (`agents`), alerting (`alerts`) and the log and event store (`logs`) never use the
//! HTTP layer (`api`); the HTTP layer and the agent service call `ops`. Their test modules
//! (`*tests.rs`), which drive the API on purpose, are not read.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir` (or `dir` itself, when it is a file).
fn sources(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the source directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_layers_below_the_http_api_never_import_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    let mut offending = Vec::new();
    for layer in ["ops", "agents", "alerts", "logs.rs"] {
        let before = checked;
        // Test modules drive the API on purpose.
        let files = sources(&src.join(layer)).into_iter().filter(|f| {
            !f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("tests.rs"))
        });
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a source file is readable");
            checked += 1;
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains("crate::api") || code.contains("super::api") {
                    offending.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(checked > before, "no source file of {layer} was read");
    }

    assert!(
        offending.is_empty(),
        "these use the HTTP layer; call crate::ops instead:\n{}",
        offending.join("\n")
    );
}
