//! How `perf-operator`'s commands end, in one table per command: the code uses these constants and
//! `docs/reference.md` is generated from the tables (`perf-operator reference`).

/// Success.
pub const OK: i32 = 0;
/// Any command: an error, printed on stderr.
pub const ERROR: i32 = 1;
/// Any command: a usage error (clap's).
pub const USAGE: i32 = 2;
/// `validate`: some profile or template is invalid.
pub const INVALID: i32 = 1;
/// `validate`: no PerformanceProfile found in the files.
pub const NOTHING_FOUND: i32 = 2;
/// `plan`: ClickHouse statements or objects would be refused.
pub const REFUSED: i32 = 3;
/// `policy promote`: no candidate to promote (none declared, or --world needed).
pub const NO_CANDIDATE: i32 = 3;
/// `policy promote`: the candidate has no verdict for the spec as it is, or it differs or failed (no --force).
pub const NOT_AGREED: i32 = 4;
/// `policy promote`: the profile changed since it was read; nothing was written.
pub const CONFLICT: i32 = 5;

/// Each command (or group) with its codes, as the reference lists them.
pub fn tables() -> Vec<(&'static str, Vec<(i32, String)>)> {
    let own = |codes: &[(i32, &str)]| codes.iter().map(|(c, m)| (*c, m.to_string())).collect::<Vec<_>>();
    vec![
        (
            "every command",
            own(&[
                (OK, "success"),
                (ERROR, "an error, printed on stderr (for `run`: the operator could not start or stopped on one)"),
                (USAGE, "a usage error: an unknown flag or a missing argument"),
            ]),
        ),
        (
            "validate",
            own(&[
                (OK, "every profile and template is valid"),
                (INVALID, "a finding: each printed as `file:doc:field: message`"),
                (NOTHING_FOUND, "no PerformanceProfile in the files given"),
            ]),
        ),
        (
            "plan",
            own(&[(OK, "the plan is printed"), (REFUSED, "the plan is printed; ClickHouse objects would be refused")]),
        ),
        ("canary analyze", own(&perf_canary::analyze::EXIT_CODES)),
        (
            "policy promote",
            own(&[
                (OK, "the candidate is the policy now (one write)"),
                (
                    NO_CANDIDATE,
                    "nothing to promote: no candidate (in the --world given), or both worlds have one and --world is missing",
                ),
                (
                    NOT_AGREED,
                    "refused: status has no verdict for the candidate as the spec has it, or the verdict is Differs or \
                     Failed (--force promotes anyway)",
                ),
                (CONFLICT, "the profile changed since it was read: nothing was written; run it again"),
            ]),
        ),
        ("policy eval, policy validate, policy bench", own(&perf_policy_host::cli::EXIT_CODES)),
    ]
}
