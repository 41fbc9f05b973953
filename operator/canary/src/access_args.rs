//! `canary analyze`'s options for a Prometheus behind auth, a private CA or a tenant header: the same
//! [`perf_prometheus::Access`] the operator builds from a profile's `prometheusAccess`, from files and flags here.

use std::io::Read;
use std::path::{Path, PathBuf};

use perf_prometheus::{Access, Auth};

use crate::{Error, Result};

/// Credential and CA files are small; a larger one is a mistake (or a device file), not read whole.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Options of `canary analyze` that say how to reach Prometheus.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AccessArgs {
    /// File holding a bearer token, sent as `Authorization: Bearer`.
    #[arg(long, env = "PROMETHEUS_BEARER_TOKEN_FILE", conflicts_with = "basic_auth_user")]
    pub bearer_token_file: Option<PathBuf>,
    /// User name for basic auth (with --basic-auth-password-file).
    #[arg(long, requires = "basic_auth_password_file")]
    pub basic_auth_user: Option<String>,
    /// File holding the basic-auth password.
    #[arg(long, env = "PROMETHEUS_BASIC_AUTH_PASSWORD_FILE", requires = "basic_auth_user")]
    pub basic_auth_password_file: Option<PathBuf>,
    /// PEM bundle of the CA that signs Prometheus's certificate, trusted besides the system roots.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Extra request header, NAME=VALUE (repeatable), e.g. X-Scope-OrgID=team-a.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
}

impl AccessArgs {
    /// Reads the files and checks the headers; every mistake is bad input (exit 2).
    pub fn access(&self) -> Result<Access> {
        let auth = match (&self.bearer_token_file, &self.basic_auth_user, &self.basic_auth_password_file) {
            (Some(token), _, _) => Some(Auth::Bearer(text(token)?.trim().to_string())),
            (None, Some(username), Some(password)) => Some(Auth::Basic {
                username: username.clone(),
                password: text(password)?.trim_end_matches(['\r', '\n']).to_string(),
            }),
            _ => None,
        };
        let ca_pem = self.ca_file.as_deref().map(read).transpose()?;
        let headers = self.headers.iter().map(|h| header(h)).collect::<Result<Vec<_>>>()?;
        Ok(Access { auth, ca_pem, headers })
    }
}

fn header(text: &str) -> Result<(String, String)> {
    let (name, value) = text.split_once('=').ok_or_else(|| perf_prometheus::Error::InvalidAccess {
        reason: format!("--header {text:?}: expected NAME=VALUE"),
    })?;
    perf_prometheus::header(name, value)?;
    Ok((name.to_string(), value.to_string()))
}

fn text(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?).map_err(|_| Error::ReadFile {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    let failed = |source| Error::ReadFile { path: path.display().to_string(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)).map_err(failed)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let too_big =
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than {MAX_FILE_BYTES} bytes"));
        return Err(failed(too_big));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("perf-canary-access-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn files_and_headers_become_the_access() {
        let args = AccessArgs {
            basic_auth_user: Some("ops".into()),
            basic_auth_password_file: Some(file("password", "s3cret\n")),
            headers: vec!["X-Scope-OrgID=team-a".into()],
            ..AccessArgs::default()
        };
        let access = args.access().unwrap();
        assert_eq!(access.auth, Some(Auth::Basic { username: "ops".into(), password: "s3cret".into() }));
        assert_eq!(access.headers, [("X-Scope-OrgID".to_string(), "team-a".to_string())]);
        let token = AccessArgs { bearer_token_file: Some(file("token", " t0ken \n")), ..AccessArgs::default() };
        assert_eq!(token.access().unwrap().auth, Some(Auth::Bearer("t0ken".into())));
    }

    #[test]
    fn mistakes_are_input_errors_that_name_what_is_wrong() {
        let cases = [
            (AccessArgs { headers: vec!["X-Org".into()], ..AccessArgs::default() }, "expected NAME=VALUE"),
            (AccessArgs { headers: vec!["Authorization=Bearer x".into()], ..AccessArgs::default() }, "operator itself"),
            (
                AccessArgs { ca_file: Some("/nonexistent/ca.pem".into()), ..AccessArgs::default() },
                "/nonexistent/ca.pem",
            ),
            (AccessArgs { bearer_token_file: Some("/dev/zero".into()), ..AccessArgs::default() }, "/dev/zero"),
        ];
        for (args, expected) in cases {
            let err = args.access().unwrap_err();
            assert_eq!(err.category(), "input", "{err}");
            let text = format!("{err}: {}", std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default());
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
    }
}
