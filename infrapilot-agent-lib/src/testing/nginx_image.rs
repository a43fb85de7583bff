//! [`NGINX_IMAGE`]: Debian's nginx (the host's `/usr/sbin/nginx`, which `cargo xtask provision`
//! installs) with exactly the shared libraries `ldd` names, `FROM scratch` — the image the
//! agent's nginx-in-a-container tests run, since no registry is reachable to pull one from.

use std::collections::BTreeSet;
use std::path::Path;

use tokio::sync::OnceCell;

use super::tar::Tar;
use super::{TestDockerError, ensure_image};

/// The nginx test image.
pub const NGINX_IMAGE: &str = "infrapilot-test/nginx:1";
/// Where the nginx binary is read from.
pub const NGINX_BINARY: &str = "/usr/sbin/nginx";

const IMAGE_MARK: (&str, &str) = ("infrapilot.test.image", "nginx-1");

/// Builds [`NGINX_IMAGE`] unless it exists, and returns its reference. Idempotent and safe
/// from many tests and processes at once.
pub async fn ensure_nginx_image() -> Result<String, TestDockerError> {
    static BUILT: OnceCell<String> = OnceCell::const_new();
    BUILT
        .get_or_try_init(|| ensure_image(NGINX_IMAGE, IMAGE_MARK, context))
        .await
        .cloned()
}

/// The build context: nginx, its libraries and the dynamic loader at their paths, the
/// users nginx's workers run as, and the directories its compiled-in paths name.
fn context() -> Result<Vec<u8>, TestDockerError> {
    let missing = |e: std::io::Error| {
        TestDockerError::Build(format!(
            "cannot read {NGINX_BINARY} ({e}); install Debian's nginx (`cargo xtask provision` does)"
        ))
    };
    let nginx = std::fs::read(NGINX_BINARY).map_err(missing)?;
    let ldd = std::process::Command::new("ldd")
        .arg(NGINX_BINARY)
        .output()
        .map_err(|e| TestDockerError::Build(format!("running ldd: {e}")))?;
    let libraries: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|t| t.starts_with('/'))
        .map(str::to_owned)
        .collect();
    if libraries.is_empty() {
        return Err(TestDockerError::Build(format!(
            "ldd named no library of {NGINX_BINARY}: {}",
            String::from_utf8_lossy(&ldd.stderr)
        )));
    }
    let mut tar = Tar::default();
    let dockerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/sbin:/usr/bin:/sbin:/bin\nLABEL {}=\"{}\"\nSTOPSIGNAL SIGQUIT\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\n",
        IMAGE_MARK.0, IMAGE_MARK.1
    );
    tar.file("Dockerfile", 0o644, dockerfile.as_bytes());
    let mut dirs = BTreeSet::new();
    let mut add = |tar: &mut Tar, path: &str, mode: u32, data: &[u8]| {
        for parent in Path::new(path).ancestors().skip(1) {
            let p = parent.to_string_lossy();
            if p.len() > 1 && dirs.insert(p.to_string()) {
                tar.dir(&format!("rootfs{p}/"), 0o755);
            }
        }
        tar.file(&format!("rootfs{path}"), mode, data);
    };
    add(&mut tar, NGINX_BINARY, 0o755, &nginx);
    for library in &libraries {
        let data = std::fs::read(library)
            .map_err(|e| TestDockerError::Build(format!("reading {library}: {e}")))?;
        add(&mut tar, library, 0o755, &data);
    }
    add(
        &mut tar,
        "/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    add(
        &mut tar,
        "/etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n",
    );
    for dir in ["/var/log/nginx", "/var/lib/nginx", "/run", "/tmp"] {
        tar.dir(
            &format!("rootfs{dir}/"),
            if dir == "/tmp" { 0o1777 } else { 0o755 },
        );
    }
    Ok(tar.finish())
}
