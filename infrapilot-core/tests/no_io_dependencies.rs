//! Architecture invariant: `infrapilot-core` does no I/O, so it depends on no async runtime,
//! database, HTTP, gRPC, TLS, Docker, clock or OS-randomness crate. `cargo tree` resolves the
//! crate's own dependency graph (normal and build edges, its own features), and this test fails
//! the moment one of those crates enters it.

use std::process::Command;

/// Crates whose presence means the core could do I/O, read a clock or draw OS randomness.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "futures-io",
    "hyper",
    "h2",
    "http-body",
    "axum",
    "tower",
    "tonic",
    "reqwest",
    "ureq",
    "sqlx",
    "rusqlite",
    "libsqlite3-sys",
    "postgres",
    "tokio-postgres",
    "bollard",
    "rustls",
    "openssl",
    "native-tls",
    "getrandom",
    "chrono",
    "iana-time-zone",
    "lettre",
    "instant-acme",
    "notify",
    "tempfile",
];

#[test]
fn core_has_no_io_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--package",
            "infrapilot-core",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("utf-8");
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"infrapilot-core"),
        "unexpected cargo tree output:\n{tree}"
    );
    assert!(
        names.contains(&"serde"),
        "the tree should list the core's own dependencies:\n{tree}"
    );
    let found: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| FORBIDDEN.contains(n))
        .collect();
    assert!(
        found.is_empty(),
        "infrapilot-core must stay free of I/O, but now depends on {found:?}:\n{tree}"
    );
}
