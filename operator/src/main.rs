use perf_operator::cli::{self, Command};
use perf_operator::promote::PolicyCommand;
use perf_policy_host::cli::PolicyCommand as HostCommand;
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let args = cli::parse_args();
    // The policy compile worker runs before any runtime thread exists: it limits its own address space first.
    if let Command::Policy { command: PolicyCommand::Offline(HostCommand::CompileWorker(worker)) } = &args.command {
        return Ok(perf_policy_host::isolate::serve(worker));
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(args))
}

async fn run(args: cli::Cli) -> anyhow::Result<ExitCode> {
    perf_operator::tls::install_crypto_provider();
    // The controller logs its work; the offline commands print results and only warn on stderr.
    let level = if matches!(args.command, Command::Run(_)) { "info" } else { "warn" };
    perf_operator::telemetry::init_logging(args.log_format, level);
    let code = match args.command {
        Command::Run(run) => cli::run_operator(*run).await.map(|()| 0)?,
        Command::Crd { reference: true, .. } => {
            print!("{}", perf_operator::reference::markdown());
            0
        }
        Command::Crd { templates: true, .. } => {
            print!("{}", cli::template_crds_yaml()?);
            0
        }
        Command::Crd { .. } => {
            print!("{}", cli::crd_yaml()?);
            0
        }
        Command::Reference => {
            print!("{}", perf_operator::reference::tables::markdown()?);
            0
        }
        Command::Validate { files } => cli::run_validate(&files)?,
        Command::Plan(plan) => {
            let out = cli::run_plan(&plan).await?;
            print!("{}", out.text);
            if out.refused > 0 {
                eprintln!("{} ClickHouse object(s) would be refused; see `refused` in the plan", out.refused);
                perf_operator::exit_codes::REFUSED
            } else {
                perf_operator::exit_codes::OK
            }
        }
        Command::Canary { command } => perf_canary::run(command).await?,
        Command::Policy { command: PolicyCommand::Promote(args) } => {
            match perf_operator::promote::run(&args, &mut std::io::stdout()).await {
                Ok(()) => perf_operator::exit_codes::OK,
                Err(e) => {
                    eprintln!("error: {}", perf_operator::error::chain(&e));
                    e.exit_code()
                }
            }
        }
        Command::Policy { command: PolicyCommand::Offline(command) } => {
            let outcome = perf_policy_host::cli::run(command).await?;
            if outcome.to_stderr {
                eprintln!("{}", outcome.output);
            } else {
                println!("{}", outcome.output);
            }
            outcome.exit_code
        }
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
