//! InfraPilot developer tasks, run as `cargo xtask <task>`.
//!
//! - `test` — the README's test command: provisions what the tests need on this machine
//!   (Debian packages, test services), then runs `cargo fmt --check`, clippy with warnings
//!   denied, the whole test suite under cargo-nextest and the doc tests.
//! - `provision` — only the provisioning step.
//!
//! It uses nothing but the standard library so that it compiles in seconds on a fresh machine.

use std::env;
use std::process::{Command, ExitCode};

/// Debian packages the test suite needs, with the binary that proves each one is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("nginx-light", "/usr/sbin/nginx"),
    ("openssl", "/usr/bin/openssl"),
];

fn main() -> ExitCode {
    let task = env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "test" => provision().and_then(|()| test()),
        "provision" => provision(),
        _ => {
            eprintln!("usage: cargo xtask <test|provision>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {task}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the Debian packages the tests need, if any is missing.
fn provision() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, binary)| !std::path::Path::new(binary).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        println!("xtask: test packages present");
        return Ok(());
    }
    println!("xtask: installing {}", missing.join(" "));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    run(sudo.iter().copied().chain(["apt-get", "update", "-q"]))?;
    run(sudo
        .iter()
        .copied()
        .chain([
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-q",
        ])
        .chain(missing.iter().copied()))
}

/// Formatting, lints, tests.
fn test() -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run([cargo.as_str(), "fmt", "--all", "--", "--check"])?;
    run([
        cargo.as_str(),
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    run([
        cargo.as_str(),
        "nextest",
        "run",
        "--workspace",
        "--no-fail-fast",
    ])?;
    run([cargo.as_str(), "test", "--workspace", "--doc"])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let args: Vec<&str> = args.into_iter().collect();
    let (program, rest) = args.split_first().ok_or("empty command")?;
    println!("xtask: $ {}", args.join(" "));
    let status = Command::new(program)
        .args(rest)
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {status}", args.join(" ")))
    }
}
