//! Writing the controller's files: the configuration directories (fresh each time, plainly),
//! the files nginx reads while it serves (atomically), and the permission bits and group of
//! each.
//!
//! Secrets get their own modes: a private key is [`KEY_MODE`] (nginx's master process reads
//! it before it drops privileges), an htpasswd file nginx serves from is [`HTPASSWD_MODE`]
//! with the group nginx's workers run as (they read it on each request), and the staging copy
//! of an htpasswd file is [`KEY_MODE`] (`nginx -t` does not open it). The bits are set on the
//! open file, so neither the umask nor a temporary file left by a crash widens them.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use infrapilot_core::nginx::{ConfigSet, HostFiles, RenderedFile};

use super::NginxError;

/// The mode of private keys (and of staged htpasswd files): the agent alone.
pub(crate) const KEY_MODE: u32 = 0o600;
/// The mode of live htpasswd files: the agent writes, nginx's workers' group reads.
pub(crate) const HTPASSWD_MODE: u32 = 0o640;
/// The mode of everything else (configuration, certificates, pages).
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// How the files under one directory (the layout's `htpasswd_dir`) are written: their mode and
/// the group they are given (`None`: the agent's own).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecretFiles<'a> {
    /// The directory.
    pub dir: &'a Path,
    /// Their permission bits.
    pub mode: u32,
    /// Their group.
    pub group: Option<u32>,
}

impl SecretFiles<'_> {
    /// The mode and group of `path`.
    fn access(&self, path: &Path) -> (u32, Option<u32>) {
        if path.starts_with(self.dir) {
            (self.mode, self.group)
        } else {
            (PUBLIC_MODE, None)
        }
    }
}

/// The files an apply writes: path → contents.
pub(crate) fn wanted_files<'a>(
    set: &'a ConfigSet,
    hosts: &[&'a HostFiles],
) -> BTreeMap<&'a str, &'a str> {
    std::iter::once(&set.main)
        .chain(set.shared.iter())
        .chain(hosts.iter().flat_map(|h| h.files.iter()))
        .map(|f: &RenderedFile| (f.path.as_str(), f.contents.as_str()))
        .collect()
}

/// Whether the configuration directory holds exactly `wanted` (and the htpasswd files in
/// `wanted` are as given).
pub(crate) async fn on_disk_matches(conf_dir: &Path, wanted: &BTreeMap<&str, &str>) -> bool {
    let wanted: Vec<(PathBuf, String)> = wanted
        .iter()
        .map(|(path, contents)| (PathBuf::from(path), (*contents).to_owned()))
        .collect();
    let conf_dir = conf_dir.to_path_buf();
    tokio::task::spawn_blocking(move || on_disk_matches_blocking(&conf_dir, &wanted))
        .await
        .unwrap_or(false)
}

fn on_disk_matches_blocking(conf_dir: &Path, wanted: &[(PathBuf, String)]) -> bool {
    for (path, contents) in wanted {
        match std::fs::read_to_string(path) {
            Ok(current) if current == *contents => {}
            _ => return false,
        }
    }
    // No stray file under the configuration directory (a host that was removed).
    let mut stack = vec![conf_dir.to_path_buf()];
    let mut count = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return false;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                count += 1;
            }
        }
    }
    let under_conf = wanted
        .iter()
        .filter(|(p, _)| p.starts_with(conf_dir))
        .count();
    count == under_conf
}

/// Recreates `dir` with the main file, the shared files and `hosts`' files; the hosts'
/// htpasswd files go wherever their paths say, with the mode and group `secrets` gives them.
pub(crate) async fn write_dir(
    dir: &Path,
    set: &ConfigSet,
    hosts: &[&HostFiles],
    secrets: SecretFiles<'_>,
) -> Result<(), NginxError> {
    let (inside, outside): (Vec<_>, Vec<_>) = wanted_files(set, hosts)
        .into_iter()
        .partition(|(path, _)| Path::new(path).starts_with(dir));
    let inside: Vec<(PathBuf, String, u32, Option<u32>)> = inside
        .into_iter()
        .map(|(path, contents)| {
            let path = PathBuf::from(path);
            let (mode, group) = secrets.access(&path);
            (path, contents.to_owned(), mode, group)
        })
        .collect();
    let owned = dir.to_path_buf();
    // A fresh directory nginx reads only once it is tested (and the agent writes it again
    // from the persisted state after a crash): plain writes, no fsync each, in one blocking
    // task for the lot (a thousand hosts are a thousand files).
    tokio::task::spawn_blocking(move || write_fresh_dir(&owned, &inside))
        .await
        .map_err(|e| io("writing", dir, std::io::Error::other(e)))??;
    // Read while nginx serves (htpasswd files): replaced whole, never seen half.
    for (path, contents) in outside {
        let path = Path::new(path);
        let (mode, group) = secrets.access(path);
        write_atomic_owned(path, contents.as_bytes(), mode, group).await?;
    }
    Ok(())
}

fn write_fresh_dir(
    dir: &Path,
    files: &[(PathBuf, String, u32, Option<u32>)],
) -> Result<(), NginxError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    remove_dir_blocking(dir)?;
    std::fs::create_dir_all(dir).map_err(|source| io("creating", dir, source))?;
    let mut made = std::collections::HashSet::new();
    for (path, contents, mode, group) in files {
        if let Some(parent) = path.parent()
            && made.insert(parent.to_path_buf())
        {
            std::fs::create_dir_all(parent).map_err(|source| io("creating", parent, source))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(*mode)
            .open(path)
            .map_err(|source| io("writing", path, source))?;
        restrict(&file, *mode, *group).map_err(|source| io("setting the mode of", path, source))?;
        file.write_all(contents.as_bytes())
            .map_err(|source| io("writing", path, source))?;
    }
    Ok(())
}

/// Gives an open file exactly `mode` (whatever the umask or an earlier file said) and, when
/// given, the group `group`, before any byte of it is written.
fn restrict(file: &std::fs::File, mode: u32, group: Option<u32>) -> std::io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group {
        std::os::unix::fs::fchown(file, None, Some(gid))?;
    }
    Ok(())
}

/// Writes a file through a temporary file and a rename, so nginx never reads half of it.
pub(crate) async fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), NginxError> {
    write_atomic_mode(path, contents, PUBLIC_MODE).await
}

/// [`write_atomic`] with the file's permission bits (set before any byte is written).
pub(crate) async fn write_atomic_mode(
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<(), NginxError> {
    write_atomic_owned(path, contents, mode, None).await
}

/// [`write_atomic_mode`] that also gives the file the group `group` (when given) before any
/// byte is written.
pub(crate) async fn write_atomic_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    group: Option<u32>,
) -> Result<(), NginxError> {
    use tokio::io::AsyncWriteExt as _;

    if let Some(parent) = path.parent() {
        create_dir(parent).await?;
    }
    let tmp = path.with_extension(TMP_EXTENSION);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .await
        .map_err(|source| io("writing", &tmp, source))?;
    // A temporary file left by a crash keeps its old mode through `open`.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .await
        .map_err(|source| io("setting the mode of", &tmp, source))?;
    if let Some(gid) = group {
        std::os::unix::fs::fchown(&file, None, Some(gid))
            .map_err(|source| io("setting the group of", &tmp, source))?;
    }
    file.write_all(contents)
        .await
        .map_err(|source| io("writing", &tmp, source))?;
    file.sync_all()
        .await
        .map_err(|source| io("writing", &tmp, source))?;
    drop(file);
    rename(&tmp, path).await
}

/// The extension of [`write_atomic`]'s temporary file (`privkey.infrapilot-tmp`), which a
/// crash can leave behind.
pub(crate) const TMP_EXTENSION: &str = "infrapilot-tmp";

pub(crate) async fn create_dir(dir: &Path) -> Result<(), NginxError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| io("creating", dir, source))
}

pub(crate) async fn remove_dir(dir: &Path) -> Result<(), NginxError> {
    let owned = dir.to_path_buf();
    tokio::task::spawn_blocking(move || remove_dir_blocking(&owned))
        .await
        .map_err(|e| io("removing", dir, std::io::Error::other(e)))?
}

/// Removes `dir` and everything in it (never what a symlink in it points to); a missing
/// directory is already removed.
pub(crate) fn remove_dir_blocking(dir: &Path) -> Result<(), NginxError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io("removing", dir, source)),
    }
}

pub(crate) async fn rename(from: &Path, to: &Path) -> Result<(), NginxError> {
    tokio::fs::rename(from, to)
        .await
        .map_err(|source| io("moving to", to, source))
}

pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> NginxError {
    NginxError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}
