//! The policy compile worker on its own, for the host's tests: `perf-operator policy compile-worker` is the same
//! code in the operator's binary.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    worker: perf_policy_host::isolate::WorkerArgs,
}

fn main() -> std::process::ExitCode {
    perf_policy_host::isolate::serve(&Cli::parse().worker)
}
