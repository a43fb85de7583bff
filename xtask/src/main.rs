//! InfraPilot developer tasks, run as `cargo xtask <task>`.
//!
//! - `test` — the README's test command: provisions what the tests need on this machine
//!   (Debian packages, Python's aiosmtpd, test services), then runs `cargo fmt --check`, clippy with warnings
//!   denied, the whole test suite under cargo-nextest, the doc tests, and schemathesis fuzzing
//!   of the server binary against its own OpenAPI document, then the bindings: the Python
//!   package is installed with pip and its pytest suite run, the Node addon is built and its
//!   `node --test` suite run (both suites start the real server binary).
//! - `provision` — only the provisioning step.
//! - `pg` — starts the throwaway PostgreSQL cluster and prints its admin URL, for running
//!   single tests by hand.
//!
//! It uses nothing but the standard library so that it compiles in seconds on a fresh machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the test suite needs, with the binary that proves each one is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("nginx-light", "/usr/sbin/nginx"),
    ("openssl", "/usr/bin/openssl"),
    ("postgresql", "/usr/lib/postgresql"),
    // The static busybox the Docker tests build their images from (no registry to pull from).
    ("busybox-static", "/bin/busybox"),
    // `docker-compose` for the compose stack tests.
    ("docker-compose", "/usr/bin/docker-compose"),
    // The load generator of the reload-under-load test.
    ("wrk", "/usr/bin/wrk"),
    // Let's Encrypt's ACME test server (and its DNS companion) for the certificate tests.
    ("pebble", "/usr/bin/pebble"),
];

/// The port of the throwaway PostgreSQL cluster the tests use.
const PG_PORT: u16 = 55432;

fn main() -> ExitCode {
    let task = env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "test" => provision().and_then(|()| {
            let url = start_postgres()?;
            let result = test(&url);
            stop_postgres();
            result
        }),
        "provision" => provision(),
        "pg" => start_postgres().map(|url| println!("INFRAPILOT_TEST_PG_ADMIN_URL={url}")),
        _ => {
            eprintln!("usage: cargo xtask <test|provision|pg>");
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

/// The Python packages the tests need: a real SMTP server for the alert tests.
const PYTHON_PACKAGES: &[(&str, &str)] = &[("aiosmtpd", "aiosmtpd==1.4.6")];

/// Installs the Debian packages and the Python packages the tests need, if any is missing.
fn provision() -> Result<(), String> {
    provision_debian()?;
    for (module, requirement) in PYTHON_PACKAGES {
        let importable = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
        if !importable {
            run(["python3", "-m", "pip", "install", "-q", requirement])?;
        }
    }
    Ok(())
}

/// Installs the Debian packages the tests need, if any is missing.
fn provision_debian() -> Result<(), String> {
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
fn test(pg_url: &str) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let env = [("INFRAPILOT_TEST_PG_ADMIN_URL", pg_url)];
    run([cargo.as_str(), "fmt", "--all", "--", "--check"])?;
    run([
        cargo.as_str(),
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    run_env(
        [
            cargo.as_str(),
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
        ],
        &env,
    )?;
    run_env([cargo.as_str(), "test", "--workspace", "--doc"], &env)?;
    run_env(
        [cargo.as_str(), "doc", "--workspace", "--no-deps", "--quiet"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    fuzz_api(&cargo)?;
    bindings(&cargo)
}

/// Installs the Python package and runs its pytest suite, then builds the Node addon and runs
/// its `node --test` suite. Both suites start the server binary, so it is built first. Every
/// step is idempotent: pip reinstalls the package from an incremental cargo build, and the
/// addon is rebuilt incrementally and replaced atomically.
fn bindings(cargo: &str) -> Result<(), String> {
    run([cargo, "build", "-q", "-p", "infrapilot-server"])?;
    run(["python3", "-m", "pip", "install", "-q", "./bindings/python"])?;
    let has_pytest = Command::new("python3")
        .args(["-c", "import pytest"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pytest {
        run(["python3", "-m", "pip", "install", "-q", "pytest"])?;
    }
    // `run` fails on every non-zero status, so pytest's exit code 5 ("no tests were
    // collected") fails the step as it should: a suite that runs nothing proves nothing.
    run(["python3", "-m", "pytest", "-q", "bindings/python/tests"])?;
    run(["sh", "bindings/node/build.sh"])?;
    run(["node", "--test", "bindings/node/test/"])
}

/// The schemathesis version the API fuzzing runs with.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Fuzzes the server binary against its own OpenAPI document (see
/// `infrapilot-server/fuzz/fuzz_api.py`).
fn fuzz_api(cargo: &str) -> Result<(), String> {
    let importable = Command::new("python3")
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        run(["python3", "-m", "pip", "install", "-q", SCHEMATHESIS])?;
    }
    // The fuzzer enrols throwaway agents with the real agent binary.
    run([
        cargo,
        "build",
        "-q",
        "-p",
        "infrapilot-server",
        "-p",
        "infrapilot-agentd",
    ])?;
    let target = env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let binary = Path::new(&target).join("debug").join("infrapilot-server");
    run([
        "python3",
        "infrapilot-server/fuzz/fuzz_api.py",
        binary.to_string_lossy().as_ref(),
        "25",
    ])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    run_env(args, &[])
}

fn run_env<'a>(
    args: impl IntoIterator<Item = &'a str>,
    env: &[(&str, &str)],
) -> Result<(), String> {
    let args: Vec<&str> = args.into_iter().collect();
    let (program, rest) = args.split_first().ok_or("empty command")?;
    println!("xtask: $ {}", args.join(" "));
    let status = Command::new(program)
        .args(rest)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {status}", args.join(" ")))
    }
}

/// The newest PostgreSQL server binaries Debian installed.
fn pg_bin() -> Result<PathBuf, String> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (/usr/lib/postgresql: {e})"))?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| "no PostgreSQL server binaries under /usr/lib/postgresql".to_owned())
}

fn pg_dir() -> PathBuf {
    env::temp_dir().join(format!("infrapilot-test-pg-{PG_PORT}"))
}

/// Runs a PostgreSQL tool as the `postgres` account when we are root (initdb refuses root).
fn pg_tool(bin: &Path, tool: &str, args: &[&str]) -> Result<(), String> {
    let program = bin.join(tool);
    let program = program.to_string_lossy();
    if is_root() {
        run(["runuser", "-u", "postgres", "--", program.as_ref()]
            .into_iter()
            .chain(args.iter().copied()))
    } else {
        run([program.as_ref()].into_iter().chain(args.iter().copied()))
    }
}

/// Starts a fresh throwaway cluster on 127.0.0.1:PG_PORT and returns its superuser URL.
fn start_postgres() -> Result<String, String> {
    let bin = pg_bin()?;
    let dir = pg_dir();
    let dir_text = dir.to_string_lossy().into_owned();
    if dir.exists() {
        // A cluster left over from an interrupted run: stop it and start clean.
        let _ = pg_tool(
            &bin,
            "pg_ctl",
            &["stop", "-D", &dir_text, "-m", "immediate"],
        );
        std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {dir_text}: {e}"))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {dir_text}: {e}"))?;
    if is_root() {
        run(["chown", "postgres:postgres", dir_text.as_str()])?;
    }
    pg_tool(
        &bin,
        "initdb",
        &[
            "-D",
            &dir_text,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    )?;
    let options = format!(
        "-p {PG_PORT} -k {dir_text} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
    );
    let log = dir.join("server.log");
    pg_tool(
        &bin,
        "pg_ctl",
        &[
            "start",
            "-w",
            "-D",
            &dir_text,
            "-o",
            &options,
            "-l",
            &log.to_string_lossy(),
        ],
    )?;
    Ok(format!("postgres://postgres@127.0.0.1:{PG_PORT}/postgres"))
}

fn stop_postgres() {
    if let Ok(bin) = pg_bin() {
        let dir = pg_dir();
        let _ = pg_tool(
            &bin,
            "pg_ctl",
            &["stop", "-D", &dir.to_string_lossy(), "-m", "fast"],
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
