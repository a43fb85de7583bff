//! Where the rendered files live on the agent's machine.

use serde::{Deserialize, Serialize};

use super::values::{ConfPath, Resolver};
use crate::ids::CertificateId;
use crate::values::ValueError;

/// The directories and files nginx runs with. Every path is absolute, so the rendered config
/// does not depend on nginx's `-p` prefix; the agent creates the directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Layout {
    /// Holds `nginx.conf`, `shared/`, `server/`, `hosts/` and `pages/`.
    pub conf_dir: ConfPath,
    /// Holds one folder per certificate id with `fullchain.pem` and `privkey.pem`.
    pub cert_dir: ConfPath,
    /// Holds one htpasswd file per host with an access list.
    pub htpasswd_dir: ConfPath,
    /// Holds the access and error logs.
    pub log_dir: ConfPath,
    /// Holds nginx's temporary files (request bodies, proxy buffers); must exist.
    pub temp_dir: ConfPath,
    /// The ACME HTTP-01 webroot: a token `T` is served from
    /// `<acme_webroot>/.well-known/acme-challenge/T`.
    pub acme_webroot: ConfPath,
    /// The pid file.
    pub pid_file: ConfPath,
    /// The DNS resolvers upstream names are resolved with at request time.
    pub resolvers: Resolvers,
    /// Whether nginx also listens on IPv6 (`[::]:80`, `[::]:443`); turn off where the kernel
    /// has no IPv6, or nginx will not start.
    pub ipv6: bool,
    /// The port plain HTTP (and the ACME HTTP-01 challenge) is served on; 80 unless nginx
    /// sits behind something that forwards port 80 to it.
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// The port HTTPS is served on; 443 by default.
    #[serde(default = "default_https_port")]
    pub https_port: u16,
}

fn default_http_port() -> u16 {
    80
}

fn default_https_port() -> u16 {
    443
}

/// One to eight DNS resolvers, e.g. Docker's embedded DNS at `127.0.0.11`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "Vec<Resolver>", into = "Vec<Resolver>")]
pub struct Resolvers(Vec<Resolver>);

impl Resolvers {
    /// Checks there is at least one resolver and at most eight; errors name the field
    /// `resolvers`.
    pub fn new(resolvers: Vec<Resolver>) -> Result<Self, ValueError> {
        if resolvers.is_empty() || resolvers.len() > 8 {
            return Err(ValueError::new(
                "resolvers",
                &resolvers.len().to_string(),
                "must name one to eight resolvers",
            ));
        }
        Ok(Self(resolvers))
    }

    /// The resolvers in order.
    pub fn as_slice(&self) -> &[Resolver] {
        &self.0
    }
}

impl TryFrom<Vec<Resolver>> for Resolvers {
    type Error = ValueError;

    fn try_from(resolvers: Vec<Resolver>) -> Result<Self, Self::Error> {
        Self::new(resolvers)
    }
}

impl From<Resolvers> for Vec<Resolver> {
    fn from(r: Resolvers) -> Self {
        r.0
    }
}

/// The two files of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CertificatePaths {
    /// `<cert_dir>/<id>/fullchain.pem`: the certificate followed by its chain.
    pub fullchain: String,
    /// `<cert_dir>/<id>/privkey.pem`: the private key.
    pub privkey: String,
}

impl Layout {
    /// Where the files of certificate `id` are expected.
    pub fn certificate_paths(&self, id: CertificateId) -> CertificatePaths {
        let dir = self.cert_dir.join(&id.to_string());
        CertificatePaths {
            fullchain: format!("{dir}/fullchain.pem"),
            privkey: format!("{dir}/privkey.pem"),
        }
    }

    /// The main config file, `<conf_dir>/nginx.conf`.
    pub fn main_conf_path(&self) -> String {
        self.conf_dir.join("nginx.conf")
    }
}
