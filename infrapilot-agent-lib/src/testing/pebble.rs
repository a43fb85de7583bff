//! Pebble, Let's Encrypt's ACME test server (Debian's `pebble`, which `cargo xtask provision`
//! installs), for tests that obtain real certificates.
//!
//! [`Pebble::start`] runs `pebble-challtestsrv` as the DNS server (every name resolves to
//! 127.0.0.1) and `pebble` with a TLS certificate made for the run, validating HTTP-01 on the
//! port nginx serves plain HTTP on. Both processes stop when the guard drops.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Pebble binary.
pub const PEBBLE: &str = "/usr/bin/pebble";
/// Pebble's DNS companion.
pub const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// A running Pebble; stopped on drop.
#[derive(Debug)]
pub struct Pebble {
    acme_port: u16,
    management_port: u16,
    dir: tempfile::TempDir,
    ca_pem: String,
    children: Vec<Child>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 challenges on `127.0.0.1:http_port`; waits until its
    /// directory answers. A port taken by another test between choosing and binding it makes
    /// Pebble exit: it is started again on other ports, up to three times.
    pub async fn start(http_port: u16) -> io::Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(http_port).await {
                Ok(pebble) => return Ok(pebble),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| other("pebble did not start")))
    }

    async fn start_once(http_port: u16) -> io::Result<Self> {
        for binary in [PEBBLE, CHALLTESTSRV] {
            if !Path::new(binary).exists() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{binary} is missing (Debian's pebble; cargo xtask provision installs it)"
                    ),
                ));
            }
        }
        let dir = tempfile::tempdir()?;
        // A CA for Pebble's own HTTPS listener, which the ACME client is told to trust.
        let ca_key = rcgen::KeyPair::generate().map_err(other)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(other)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "InfraPilot test ACME listener CA",
        );
        let ca = ca_params.self_signed(&ca_key).map_err(other)?;
        let key = rcgen::KeyPair::generate().map_err(other)?;
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(other)?;
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(other)?;
        std::fs::write(dir.path().join("cert.pem"), cert.pem())?;
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem())?;
        std::fs::write(dir.path().join("ca.pem"), ca.pem())?;

        let [
            acme_port,
            management_port,
            dns_port,
            dns_management_port,
            tls_port,
        ] = super::free_ports();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string())?;
        let log = |name: &str| std::fs::File::create(dir.path().join(name));
        let mut children = Vec::new();
        let dns = Command::new(CHALLTESTSRV)
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(log("challtestsrv.log")?)
            .stderr(Stdio::null())
            .spawn()?;
        children.push(dns);
        let pebble = Command::new(PEBBLE)
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random waits, no random nonce rejections: the tests are about the agent.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order validates afresh (a renewal proves the challenge again).
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log")?)
            .stderr(log("pebble.err")?)
            .spawn()?;
        children.push(pebble);
        let mut this = Self {
            acme_port,
            management_port,
            dir,
            ca_pem: ca.pem(),
            children,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let answer =
                super::http::get_tls(this.acme_port, "127.0.0.1", "/dir", &this.ca_pem).await;
            if matches!(answer, Ok((200, _))) {
                return Ok(this);
            }
            let exited = this
                .children
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || tokio::time::Instant::now() > deadline {
                let log = this.log();
                this.stop();
                return Err(other(format!(
                    "pebble did not answer (exited: {exited}; last answer {answer:?}); its log:\n{log}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// A PEM file with the CA that signed Pebble's own HTTPS certificate (the ACME client's
    /// trust root).
    pub fn listener_ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The root that signs the certificates Pebble issues (made fresh at every start), PEM.
    pub async fn issuing_root(&self) -> io::Result<String> {
        let (code, body) =
            super::http::get_tls(self.management_port, "127.0.0.1", "/roots/0", &self.ca_pem)
                .await?;
        if code != 200 {
            return Err(other(format!("GET /roots/0 answered {code}: {body}")));
        }
        Ok(body)
    }

    /// Pebble's log so far (for failure messages).
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("pebble.log"), read("pebble.err"))
    }

    fn stop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}
