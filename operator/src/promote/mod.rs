//! `kubectl perf policy promote`: a policy candidate becomes the active policy, by hand only. The profile is read,
//! [`decide::promotion`] says whether and how, and one patch guarded by the resourceVersion read writes it.

pub mod decide;

pub use decide::{Promotion, Refusal, World};

use crate::exit_codes;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use perf_canary::cli::{ProfileRef, kube_config};
use perf_operator_api::{CandidateVerdict, PerformanceProfile};
use std::io::Write;

/// The `policy` commands: the offline ones of the policy host, and `promote`, which acts on a cluster.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    #[command(flatten)]
    Offline(perf_policy_host::cli::PolicyCommand),
    /// Make a profile's policy candidate its policy, in one write guarded by the version read.
    ///
    /// The candidate replaces `policy` (whose onFailure is kept) and `candidate` is removed. Refused unless the
    /// candidate's verdict in status is Agrees for its current source, settings and bound (--force promotes anyway).
    /// Under GitOps, commit the same change, or the GitOps tool puts the old spec back. Exit codes: 0 promoted; 3
    /// nothing to promote, or --world needed; 4 no agreeing verdict (without --force); 5 the profile changed since it
    /// was read (nothing written); 1 any other error.
    Promote(PromoteArgs),
}

#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub profile: ProfileRef,
    /// Which candidate: needed when both spec.cache and spec.rateLimit declare one.
    #[arg(long, value_enum)]
    pub world: Option<World>,
    /// Promote whatever the verdict: none yet, Differs or Failed.
    #[arg(long)]
    pub force: bool,
}

/// Why a promotion did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(
        "profile {name} changed since it was read (resourceVersion {resource_version}): nothing was changed; run \
         promote again"
    )]
    Conflict { name: String, resource_version: String },
    #[error("{action}")]
    Kube {
        action: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    Connect(#[from] perf_canary::Error),
    #[error("cannot write output")]
    Output(#[source] std::io::Error),
}

impl Error {
    /// The exit code (see [`exit_codes::tables`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused(Refusal::NoCandidate { .. } | Refusal::WhichWorld { .. }) => exit_codes::NO_CANDIDATE,
            Error::Refused(Refusal::NotJudged { .. } | Refusal::Verdict { .. }) => exit_codes::NOT_AGREED,
            Error::Conflict { .. } => exit_codes::CONFLICT,
            Error::Kube { .. } | Error::Connect(_) | Error::Output(_) => exit_codes::ERROR,
        }
    }
}

/// Runs `promote`, printing what was done to `out`.
pub async fn run(args: &PromoteArgs, out: &mut (dyn Write + Send)) -> Result<(), Error> {
    let config = kube_config(&args.profile).await?;
    let client = Client::try_from(config).map_err(kube("connect to the cluster"))?;
    let namespace = args.profile.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let api: Api<PerformanceProfile> = Api::namespaced(client, &namespace);
    let name = &args.profile.name;
    let profile = api.get(name).await.map_err(kube(&format!("get PerformanceProfile {namespace}/{name}")))?;
    let promotion = decide::promotion(&profile, args.world, args.force)?;
    send(&api, &profile, &promotion).await?;
    writeln!(out, "{}", done(&namespace, name, &promotion)).map_err(Error::Output)
}

/// Sends the patch; a profile changed since it was read is a conflict.
async fn send(api: &Api<PerformanceProfile>, profile: &PerformanceProfile, promotion: &Promotion) -> Result<(), Error> {
    let name = profile.metadata.name.clone().unwrap_or_default();
    let patch: json_patch::Patch = serde_json::from_value(promotion.patch.clone())
        .map_err(|e| Error::Output(std::io::Error::other(format!("the promotion patch: {e}"))))?;
    match api.patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::Conflict {
            name,
            resource_version: profile.metadata.resource_version.clone().unwrap_or_default(),
        }),
        Err(e) => Err(kube(&format!("patch PerformanceProfile {name}"))(e)),
    }
}

fn kube(action: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |source| Error::Kube { action: action.to_string(), source: Box::new(source) }
}

/// What was done, for people.
fn done(namespace: &str, name: &str, p: &Promotion) -> String {
    let on = match (p.verdict, p.forced) {
        (Some(CandidateVerdict::Agrees), false) => "it agreed".to_string(),
        (Some(v), _) => format!("--force, its verdict {}", crate::decide::shadow::verdict_label(v)),
        (None, _) => "--force, never judged".to_string(),
    };
    let section = p.world.section();
    format!(
        "{namespace}/{name}: {section}.policy is now {} (was {}; {on}); {section}.candidate removed. Under GitOps, \
         commit the same change to the profile's source, or it is put back.",
        p.promoted, p.replaced
    )
}
