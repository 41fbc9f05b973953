//! Manual commands from the `perf.operator.dev/canary-command` annotation, as `kubectl perf canary VERB` writes
//! them: the verbs Argo Rollouts users know (`promote` one stage, `promote --full` all of them, `retry` a rolled
//! back template, `abort`), and `pause`/`resume`.

/// A manual command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    /// Pass the current stage without its analysis: the next stage, or the promotion after the last.
    Promote,
    /// Skip every remaining stage and promote now.
    PromoteFull,
    Abort,
    /// Run a rolled-back (or failed) template again from the first stage.
    Retry,
}

impl Command {
    pub const ALL: [Command; 6] =
        [Command::Pause, Command::Resume, Command::Promote, Command::PromoteFull, Command::Abort, Command::Retry];

    /// Verb as written in the annotation.
    pub fn verb(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Promote => "promote",
            Command::PromoteFull => "promote-full",
            Command::Abort => "abort",
            Command::Retry => "retry",
        }
    }
}

/// The annotation's value: `VERB` or `VERB@NONCE` (the CLI adds a timestamp so the same verb can be sent again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRequest {
    pub command: Option<Command>,
    pub raw: String,
}

/// Parses an annotation value; an unknown verb gives `command: None` so the machine can report it once.
pub fn parse_command(raw: &str) -> CommandRequest {
    let verb = raw.split('@').next().unwrap_or_default().trim();
    let command = Command::ALL.into_iter().find(|c| c.verb() == verb);
    CommandRequest { command, raw: raw.to_string() }
}

/// The verbs, for messages.
pub fn verbs() -> String {
    Command::ALL.map(Command::verb).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_parse_with_or_without_a_nonce_and_unknown_ones_are_kept_raw() {
        for c in Command::ALL {
            assert_eq!(parse_command(c.verb()).command, Some(c));
            assert_eq!(parse_command(&format!("{}@2026-12-07T08:00:00Z", c.verb())).command, Some(c));
        }
        let unknown = parse_command("promote-all@1");
        assert_eq!((unknown.command, unknown.raw.as_str()), (None, "promote-all@1"));
        assert_eq!(verbs(), "pause, resume, promote, promote-full, abort, retry");
    }
}
