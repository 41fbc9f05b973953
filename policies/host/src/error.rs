//! Errors of the policy host. [`Error::category`] is the fixed label for metrics and `PoliciesReady` reasons.

use crate::World;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Clone` so that a load failure can be remembered by digest and returned again without redoing the work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("sha256 mismatch: the pin is {expected} but the component's digest is {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("sha256 pin {0:?} is invalid: expected 64 lower-case hex characters")]
    BadPin(String),
    #[error("unknown builtin policy {0:?}: expected adaptive-ttl or adaptive-rate-limit")]
    UnknownBuiltin(String),
    #[error("fetching policy from {url}: {detail}")]
    Fetch { url: String, detail: String },
    /// A registry refused or could not give the component (HTTP status, 401, timeout, redirect, size).
    #[error("pulling policy from {reference}: {detail}")]
    Registry { reference: String, detail: String },
    /// The registry's artifact is not a policy component (manifest or layer media type).
    #[error("pulling policy from {reference}: wrong media type: {detail}")]
    MediaType { reference: String, detail: String },
    /// A required signature is missing or does not hold.
    #[error("policy from {reference} refused: {detail}")]
    Signature { reference: String, detail: String },
    #[error("loading policy component {sha256}: {detail}")]
    Load { sha256: String, detail: String },
    #[error(
        "policy component {sha256} imports {imports:?}: a policy imports only perf:policy/types, the host grants no \
         capability"
    )]
    ForbiddenImports { sha256: String, imports: Vec<String> },
    #[error("policy component {sha256} does not implement the {expected} world: {detail}")]
    WrongWorld { sha256: String, expected: World, detail: String },
    #[error("policy component not loaded now: {0}")]
    Busy(String),
    /// The compilation went past its deadline: maybe a component too costly to compile, maybe a loaded machine.
    /// Remembered for a while (`LoadLimits::compile_timeout_kept`), then tried again.
    #[error("loading policy component {sha256}: {detail}")]
    CompileTimeout { sha256: String, detail: String },
    #[error("policy trapped: {0}")]
    Trap(String),
    #[error("policy exceeded its CPU budget of {0} fuel units")]
    Timeout(u64),
    #[error("policy exceeded its memory cap of {0} bytes")]
    OutOfMemory(usize),
    #[error("policy output rejected: {0}")]
    BadOutput(String),
    #[error("policy settings rejected: {0}")]
    BadSettings(String),
    #[error("policy returned an error: {0}")]
    PolicyError(String),
    #[error("{what}: {detail}")]
    Input { what: String, detail: String },
    #[error("policy evaluation task failed: {0}")]
    Internal(String),
}

impl Error {
    /// Fixed, low-cardinality label for metrics and condition reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::DigestMismatch { .. } => "digest_mismatch",
            Error::BadPin(_) | Error::UnknownBuiltin(_) => "bad_source",
            Error::Fetch { .. } | Error::Registry { .. } => "fetch",
            Error::MediaType { .. } => "media_type",
            Error::Signature { .. } => "signature",
            Error::Load { .. } => "load",
            Error::ForbiddenImports { .. } => "forbidden_import",
            Error::WrongWorld { .. } => "wrong_world",
            Error::Busy(_) => "busy",
            Error::CompileTimeout { .. } => "compile_timeout",
            Error::Trap(_) => "trap",
            Error::Timeout(_) => "timeout",
            Error::OutOfMemory(_) => "out_of_memory",
            Error::BadOutput(_) => "bad_output",
            Error::BadSettings(_) => "bad_settings",
            Error::PolicyError(_) => "policy_error",
            Error::Input { .. } => "input",
            Error::Internal(_) => "internal",
        }
    }

    /// True for failures that are properties of the component (its digest) and the world it is loaded as, so they
    /// are remembered and not paid for again.
    pub fn is_load_failure(&self) -> bool {
        matches!(self, Error::Load { .. } | Error::ForbiddenImports { .. } | Error::WrongWorld { .. })
    }

    /// The categories of the failures [`Error::refused_digest`] names, for callers that read such a refusal back.
    pub const REFUSAL_CATEGORIES: [&'static str; 4] = ["load", "forbidden_import", "wrong_world", "compile_timeout"];

    /// The digest of a component refused for what it is (its shape, imports, world or compile cost), which a
    /// caller may remember across restarts; None for every other failure, the host's own included.
    pub fn refused_digest(&self) -> Option<&str> {
        match self {
            Error::Load { sha256, .. }
            | Error::ForbiddenImports { sha256, .. }
            | Error::WrongWorld { sha256, .. }
            | Error::CompileTimeout { sha256, .. } => Some(sha256),
            _ => None,
        }
    }

    /// True for failures of one evaluation (the policy stays loaded); false for failures to load it.
    pub fn is_evaluation_failure(&self) -> bool {
        matches!(
            self,
            Error::Trap(_)
                | Error::Timeout(_)
                | Error::OutOfMemory(_)
                | Error::BadOutput(_)
                | Error::BadSettings(_)
                | Error::PolicyError(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_with_a_digest_has_a_listed_category() {
        let d = || "d".to_string();
        let refusals = [
            Error::Load { sha256: d(), detail: d() },
            Error::ForbiddenImports { sha256: d(), imports: vec![] },
            Error::WrongWorld { sha256: d(), expected: World::Cache, detail: d() },
            Error::CompileTimeout { sha256: d(), detail: d() },
        ];
        for e in &refusals {
            assert_eq!(e.refused_digest(), Some("d"));
            assert!(Error::REFUSAL_CATEGORIES.contains(&e.category()), "{e}");
        }
        assert_eq!(refusals.len(), Error::REFUSAL_CATEGORIES.len());
        assert_eq!(Error::Internal(d()).refused_digest(), None);
        assert_eq!(Error::Busy(d()).refused_digest(), None);
    }
}
