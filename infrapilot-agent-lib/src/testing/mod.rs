//! Test support for tests against the real Docker engine (feature `test-support`).
//!
//! There is no registry to pull from, so [`ensure_test_image`] builds a small image,
//! [`TEST_IMAGE`], `FROM scratch` around the host's static busybox (Debian's `busybox-static`,
//! which `cargo xtask provision` installs): `/bin/busybox` with applet links (`sh`, `sleep`,
//! `httpd`, `echo`, `cat`, …), `/tmp`, `/www` and `/etc/passwd`.
//!
//! A [`TestDocker`] belongs to one test. Everything it creates carries the label
//! `infrapilot.test=<test>-<run>` (unique per guard, so tests run in parallel) and a unique
//! name, and everything carrying that label is removed when the guard is dropped — also when
//! the test panics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), infrapilot_agent_lib::testing::TestDockerError> {
//! use infrapilot_agent_lib::testing::{RunOptions, TestDocker};
//!
//! let docker = TestDocker::new("my_test").await?;
//! let web = docker
//!     .run("web", &["httpd", "-f", "-p", "8080", "-h", "/www"], RunOptions::default())
//!     .await?;
//! // … drive the code under test with `web.name` …
//! # Ok(()) }
//! ```

pub mod http;
mod nginx_image;
pub mod pebble;
pub mod ports;
mod tar;

pub use nginx_image::{NGINX_BINARY, NGINX_IMAGE, ensure_nginx_image};
pub use ports::{free_port, free_ports};

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, ListContainersOptions, ListImagesOptions,
    ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions, RemoveImageOptions,
    RemoveVolumeOptions,
};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use self::tar::Tar;
use crate::probe::DEFAULT_DOCKER_SOCKET;

/// The test image: busybox on an empty base.
pub const TEST_IMAGE: &str = "infrapilot-test/busybox:1";
/// The label every object a [`TestDocker`] creates carries.
pub const TEST_LABEL: &str = "infrapilot.test";
/// Where the static busybox binary is read from.
pub const BUSYBOX: &str = "/bin/busybox";

/// The busybox applets linked into the test image's `/bin`.
const APPLETS: &[&str] = &[
    "sh", "ash", "cat", "date", "echo", "env", "false", "grep", "head", "hostname", "httpd", "id",
    "kill", "ls", "mkdir", "nc", "printf", "ps", "rm", "seq", "sleep", "stty", "tail", "tee",
    "touch", "true", "wc", "wget", "yes",
];

/// A label on the test image, to tell it from a foreign image with the same tag.
const IMAGE_MARK: (&str, &str) = ("infrapilot.test.image", "busybox-1");

/// How long a Docker call of the helpers may take (a build or a forced removal can be slow).
const TIMEOUT_SECS: u64 = 120;

/// What went wrong in a test helper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestDockerError {
    /// No engine answers at the socket.
    #[error(
        "these tests need a Docker engine at {socket} ({message}); start one (CI provisions it)"
    )]
    Unavailable {
        /// The socket.
        socket: String,
        /// The client's error.
        message: String,
    },
    /// The engine refused a call.
    #[error("Docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// The static busybox is missing.
    #[error(
        "cannot read {BUSYBOX} ({0}); install Debian's busybox-static (`cargo xtask provision` does)"
    )]
    Busybox(std::io::Error),
    /// Building the test image failed.
    #[error("building {TEST_IMAGE} failed: {0}")]
    Build(String),
    /// The lock that serializes builds across test processes failed.
    #[error("locking {path}: {source}")]
    Lock {
        /// The lock file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Connects to the engine at the default socket, speaking its API version.
pub async fn connect() -> Result<Docker, TestDockerError> {
    let unavailable = |message: String| TestDockerError::Unavailable {
        socket: DEFAULT_DOCKER_SOCKET.to_owned(),
        message,
    };
    let docker = Docker::connect_with_unix(
        DEFAULT_DOCKER_SOCKET,
        TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| unavailable(e.to_string()))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| unavailable(e.to_string()))
}

/// Builds [`TEST_IMAGE`] unless it exists, and returns its reference. Idempotent and safe to
/// call from many tests and processes at once (builds are serialized by a lock file).
pub async fn ensure_test_image() -> Result<String, TestDockerError> {
    static BUILT: OnceCell<String> = OnceCell::const_new();
    BUILT
        .get_or_try_init(|| ensure_image(TEST_IMAGE, IMAGE_MARK, image_context))
        .await
        .cloned()
}

/// How to run a test container; the default runs the command detached, without a TTY, on the
/// default bridge network, with no restart policy.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Another image than the test image (one a test built with [`TestDocker::build_image`]).
    pub image: Option<String>,
    /// Environment variables, `NAME=value`.
    pub env: Vec<String>,
    /// Extra labels (the test label is always added).
    pub labels: Vec<(String, String)>,
    /// The restart policy: `always`, `on-failure`, `unless-stopped` (none when absent).
    pub restart: Option<String>,
    /// Allocate a TTY.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// The network to attach to instead of the default bridge (`host`, `none`, a name).
    pub network: Option<String>,
    /// Binds and volume mounts, `source:/path[:ro]` (a volume name or a host path).
    pub binds: Vec<String>,
    /// Create the container without starting it.
    pub create_only: bool,
}

/// A container a [`TestDocker`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestContainer {
    /// Its id.
    pub id: String,
    /// Its (unique) name.
    pub name: String,
}

/// The Docker objects of one test, removed when dropped. See the [module docs](self).
#[derive(Debug)]
pub struct TestDocker {
    docker: Docker,
    image: String,
    prefix: String,
    label_value: String,
}

impl TestDocker {
    /// A guard for the test named `test` (letters, digits, `_` and `-`), with the test image
    /// built.
    pub async fn new(test: &str) -> Result<Self, TestDockerError> {
        let image = ensure_test_image().await?;
        let docker = connect().await?;
        let test: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let run = format!("{:08x}", rand::random::<u32>());
        Ok(Self {
            docker,
            image,
            prefix: format!("ipt-{test}-{run}"),
            label_value: format!("{test}-{run}"),
        })
    }

    /// The connected client, for what the helpers do not cover.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The test image's reference.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The test label's key and this guard's value.
    pub fn label(&self) -> (&'static str, &str) {
        (TEST_LABEL, &self.label_value)
    }

    /// The test label as a Docker filter value, `infrapilot.test=<value>`.
    pub fn label_filter(&self) -> String {
        format!("{TEST_LABEL}={}", self.label_value)
    }

    /// The unique name this guard gives the object `name` (`ipt-<test>-<run>-<name>`).
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Creates (and unless `options.create_only`, starts) a labeled container of the test
    /// image running `cmd` (the image's `sh` when empty).
    pub async fn run(
        &self,
        name: &str,
        cmd: &[&str],
        options: RunOptions,
    ) -> Result<TestContainer, TestDockerError> {
        let name = self.name(name);
        let mut labels = self.labels();
        labels.extend(options.labels);
        let body = ContainerCreateBody {
            image: Some(options.image.unwrap_or_else(|| self.image.clone())),
            cmd: (!cmd.is_empty()).then(|| cmd.iter().map(|s| (*s).to_owned()).collect()),
            env: Some(options.env),
            labels: Some(labels),
            tty: Some(options.tty),
            open_stdin: Some(options.open_stdin),
            host_config: Some(HostConfig {
                restart_policy: options.restart.map(|r| RestartPolicy {
                    name: r.parse::<RestartPolicyNameEnum>().ok(),
                    maximum_retry_count: None,
                }),
                network_mode: options.network,
                binds: Some(options.binds),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    platform: String::new(),
                }),
                body,
            )
            .await?;
        if !options.create_only {
            self.docker
                .start_container(
                    &created.id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await?;
        }
        Ok(TestContainer {
            id: created.id,
            name,
        })
    }

    /// Creates a labeled bridge network; returns its name.
    pub async fn network(&self, name: &str) -> Result<String, TestDockerError> {
        let name = self.name(name);
        self.docker
            .create_network(bollard::models::NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_owned()),
                labels: Some(self.labels()),
                ..Default::default()
            })
            .await?;
        Ok(name)
    }

    /// Creates a labeled local volume; returns its name.
    pub async fn volume(&self, name: &str) -> Result<String, TestDockerError> {
        let name = self.name(name);
        self.docker
            .create_volume(bollard::models::VolumeCreateOptions {
                name: Some(name.clone()),
                labels: Some(self.labels()),
                ..Default::default()
            })
            .await?;
        Ok(name)
    }

    /// Builds a tiny labeled image (one file, `FROM scratch`) tagged `<name>:1` under this
    /// guard's prefix; returns the tag. Building the same name twice leaves the first build
    /// dangling (untagged), which is how a test gets a dangling image to prune.
    pub async fn build_image(&self, name: &str) -> Result<String, TestDockerError> {
        let tag = format!("{}:1", self.name(name));
        let mut context = Tar::default();
        let dockerfile = format!(
            "FROM scratch\nCOPY stamp /stamp\nLABEL {TEST_LABEL}=\"{}\"\n",
            self.label_value
        );
        context.file("Dockerfile", 0o644, dockerfile.as_bytes());
        // A new stamp each build, so each build is a new image.
        let stamp = format!("{tag} {}\n", rand::random::<u64>());
        context.file("stamp", 0o644, stamp.as_bytes());
        build(&self.docker, &tag, &context.finish(), "Dockerfile").await?;
        Ok(tag)
    }

    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(TEST_LABEL.to_owned(), self.label_value.clone())])
    }
}

impl Drop for TestDocker {
    /// Removes every container (with its anonymous volumes), network, volume and image
    /// carrying this guard's label. Runs on its own thread and runtime, so it works from
    /// inside or outside an async test, panicking or not.
    fn drop(&mut self) {
        let filter = self.label_filter();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(remove_labeled(&filter)),
                Err(e) => eprintln!("test cleanup of {filter}: no runtime: {e}"),
            }
        });
        if cleanup.join().is_err() {
            eprintln!("test cleanup of {} panicked", self.label_filter());
        }
    }
}

/// Removes every object carrying the label filter `filter` (`key=value`).
async fn remove_labeled(filter: &str) {
    let docker = match connect().await {
        Ok(docker) => docker,
        Err(e) => {
            eprintln!("test cleanup of {filter}: {e}");
            return;
        }
    };
    let filters = HashMap::from([("label".to_owned(), vec![filter.to_owned()])]);
    let report = |what: &str, e: bollard::errors::Error| {
        eprintln!("test cleanup of {filter}: removing {what}: {e}");
    };
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .unwrap_or_default();
    let removals = containers.iter().filter_map(|c| c.id.as_deref()).map(|id| {
        docker.remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        )
    });
    for (result, c) in futures_util::future::join_all(removals)
        .await
        .into_iter()
        .zip(&containers)
    {
        if let Err(e) = result {
            report(c.id.as_deref().unwrap_or("a container"), e);
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .unwrap_or_default();
    for id in networks.iter().filter_map(|n| n.id.as_deref()) {
        if let Err(e) = docker.remove_network(id).await {
            report(id, e);
        }
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .map(|v| v.volumes.unwrap_or_default())
        .unwrap_or_default();
    for v in &volumes {
        let options = RemoveVolumeOptions { force: true };
        if let Err(e) = docker.remove_volume(&v.name, Some(options)).await {
            report(&v.name, e);
        }
    }
    let images = docker
        .list_images(Some(ListImagesOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap_or_default();
    for image in &images {
        let options = RemoveImageOptions {
            force: true,
            noprune: false,
        };
        match docker.remove_image(&image.id, Some(options), None).await {
            Ok(_) => {}
            // Removing a child image can take its parent with it.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => report(&image.id, e),
        }
    }
}

/// Builds `tag` from the context `context` makes unless an image of ours (carrying `mark`)
/// has that tag; builds are serialized across processes by a lock file.
async fn ensure_image(
    tag: &str,
    mark: (&str, &str),
    context: fn() -> Result<Vec<u8>, TestDockerError>,
) -> Result<String, TestDockerError> {
    let docker = connect().await?;
    if has_image(&docker, tag, mark).await {
        return Ok(tag.to_owned());
    }
    let lock = lock_builds().await?;
    // Another process may have built it while this one waited for the lock.
    if !has_image(&docker, tag, mark).await {
        let context = tokio::task::spawn_blocking(context)
            .await
            .map_err(|e| TestDockerError::Build(e.to_string()))??;
        build(&docker, tag, &context, "Dockerfile").await?;
    }
    drop(lock);
    Ok(tag.to_owned())
}

/// Whether `tag` is an image of ours: it carries `mark` (a foreign image may have the tag).
async fn has_image(docker: &Docker, tag: &str, mark: (&str, &str)) -> bool {
    docker.inspect_image(tag).await.is_ok_and(|image| {
        image
            .config
            .and_then(|c| c.labels)
            .and_then(|l| l.get(mark.0).cloned())
            .is_some_and(|v| v == mark.1)
    })
}

/// The build context of the test image.
fn image_context() -> Result<Vec<u8>, TestDockerError> {
    let busybox = std::fs::read(BUSYBOX).map_err(TestDockerError::Busybox)?;
    let mut tar = Tar::default();
    let dockerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nLABEL {}=\"{}\"\nCMD [\"sh\"]\n",
        IMAGE_MARK.0, IMAGE_MARK.1
    );
    tar.file("Dockerfile", 0o644, dockerfile.as_bytes());
    tar.dir("rootfs/", 0o755);
    tar.dir("rootfs/bin/", 0o755);
    tar.file("rootfs/bin/busybox", 0o755, &busybox);
    for applet in APPLETS {
        tar.symlink(&format!("rootfs/bin/{applet}"), "busybox");
    }
    tar.dir("rootfs/etc/", 0o755);
    tar.file(
        "rootfs/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    tar.file("rootfs/etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n");
    tar.dir("rootfs/root/", 0o700);
    tar.dir("rootfs/tmp/", 0o1777);
    tar.dir("rootfs/www/", 0o755);
    tar.file("rootfs/www/index.html", 0o644, b"infrapilot test\n");
    Ok(tar.finish())
}

/// Builds the context `tar` as `tag` with the classic builder.
async fn build(
    docker: &Docker,
    tag: &str,
    tar: &[u8],
    dockerfile: &str,
) -> Result<(), TestDockerError> {
    let options = BuildImageOptions {
        dockerfile: dockerfile.to_owned(),
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut output =
        docker.build_image(options, None, Some(bollard::body_full(tar.to_vec().into())));
    let mut log = String::new();
    while let Some(item) = output.next().await {
        let info = item.map_err(|e| TestDockerError::Build(format!("{e}\n{log}")))?;
        if let Some(error) = info.error {
            return Err(TestDockerError::Build(format!("{error}\n{log}")));
        }
        if let Some(line) = info.stream {
            log.push_str(&line);
        }
    }
    Ok(())
}

/// Holds an exclusive lock on a file in the temporary directory until dropped, so only one
/// process builds the test image at a time.
async fn lock_builds() -> Result<std::fs::File, TestDockerError> {
    let path = std::env::temp_dir().join("infrapilot-test-image.lock");
    let lock_err = |path: &Path, source| TestDockerError::Lock {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| lock_err(&path, e))?;
    let locked = tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await;
    match locked {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(e)) => Err(lock_err(&path, e)),
        Err(e) => Err(lock_err(&path, std::io::Error::other(e.to_string()))),
    }
}

/// Waits up to `timeout` for `check` to hold, polling every 100 ms; returns whether it did.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
