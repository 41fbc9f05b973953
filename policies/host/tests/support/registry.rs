//! A real OCI registry for tests: distribution's `registry` (built by `tests/support/build-registry.sh`, named by
//! `PERF_REGISTRY_BIN`) on 127.0.0.1, with TLS from a fresh test CA and htpasswd basic auth. Shared by this crate's
//! registry tests and the operator's e2e test (which include this file); stopped when dropped.

// Each including test uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// The user and password the registry accepts.
pub const USER: &str = "team-a";
pub const PASSWORD: &str = "s3cret-pass";

/// A running registry at `https://{host}` (`127.0.0.1:PORT`).
pub struct Registry {
    pub host: String,
    /// The test CA (PEM) its certificate is issued by.
    pub ca: String,
    pub dir: PathBuf,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Registry {
    /// A Docker config (`.dockerconfigjson`) with `password` for this registry.
    pub fn docker_config(&self, password: &str) -> String {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
        serde_json::json!({"auths": {self.host.clone(): {"auth": auth}}}).to_string()
    }

    /// Writes the CA and a Docker config with the right password into the registry's directory; returns their paths.
    pub fn client_files(&self) -> (PathBuf, PathBuf) {
        let (ca, config) = (self.dir.join("client-ca.pem"), self.dir.join("docker-config.json"));
        std::fs::write(&ca, &self.ca).unwrap();
        std::fs::write(&config, self.docker_config(PASSWORD)).unwrap();
        (ca, config)
    }
}

fn binary() -> PathBuf {
    std::env::var_os("PERF_REGISTRY_BIN").map(PathBuf::from).expect(
        "PERF_REGISTRY_BIN names distribution's registry (tests/support/build-registry.sh); tests/run.sh sets it",
    )
}

/// Starts a registry in a fresh directory under the system's temp dir.
pub fn start(name: &str) -> Registry {
    let dir = std::env::temp_dir().join(format!("perf-registry-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let line = Command::new(binary()).args(["htpasswd", USER, PASSWORD]).output().unwrap();
    assert!(line.status.success(), "htpasswd: {}", String::from_utf8_lossy(&line.stderr));
    std::fs::write(dir.join("htpasswd"), &line.stdout).unwrap();
    // A free port: bound, released, handed to the registry (retried below if another process takes it first).
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    \
             enabled: true\n  redirect:\n    disable: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: only-for-tests\n  tls:\n    certificate: \
             {d}/cert.pem\n    key: {d}/key.pem\nauth:\n  htpasswd:\n    realm: perf-test\n    path: {d}/htpasswd\n",
            data = dir.join("data").display(),
            d = dir.display(),
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let mut child =
            Command::new(binary()).arg("serve").arg(&config_path).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        if wait_listening(port, Duration::from_secs(20)) {
            return Registry { host: format!("127.0.0.1:{port}"), ca: ca.pem(), dir, child };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("the registry did not start: see {}", dir.join("registry.log").display());
}

fn wait_listening(port: u16, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
