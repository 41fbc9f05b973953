//! `componentize [OPTIONS] IN.wasm OUT.wasm`: wraps a core module built with wit-bindgen (its WIT travels in a
//! custom section) into a component, like `wasm-tools component new`, and validates the result.
//!
//! Without options the core module is wrapped as it is. The options change the core module first; they build the
//! hostile fixtures of the host's sandbox tests (see `policies/host/tests/fixtures/README.md`):
//!
//! - `--wit DIR --world NAME`: drop every `component-type*` custom section and embed world NAME of the WIT package
//!   in DIR instead (the same guest built against an altered contract);
//! - `--extra-memory`: a second defined memory of one page;
//! - `--extra-tables N`: N more defined funcref tables of one element each;
//! - `--export-extra NAME`: a function `() -> i32` returning 0, exported as NAME (for a world that declares
//!   `export NAME: func() -> u32;`);
//! - `--bomb LOCALS,OPS[,COUNT]`: COUNT (default 1) unexported, never called functions, each with LOCALS i64 locals
//!   and a loop of OPS `local.get; local.get; i64.add; local.set` over them: work for the register allocator only;
//! - `--shape KIND,N[,COUNT]`: another cost driver (values per call or block, element items, types, globals): see
//!   `shape.rs`.

mod additions;
mod args;
mod bomb;
mod shape;

use anyhow::{Context, Result};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("componentize: {e}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match componentize(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("componentize {}: {e:#}", args.input);
            ExitCode::FAILURE
        }
    }
}

fn componentize(args: &args::Args) -> Result<()> {
    let mut module = std::fs::read(&args.input).context("reading the core module")?;
    if !args.additions.is_empty() {
        module = additions::apply(&module, &args.additions)?;
    }
    if let Some(contract) = &args.contract {
        embed_contract(&mut module, contract)?;
    }
    // Validates the output with every WASM feature on (multi-memory included).
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
        .context("encoding the component")?;
    std::fs::write(&args.output, component).with_context(|| format!("writing {}", args.output))?;
    Ok(())
}

/// Appends the `component-type` section of `contract.world` in the WIT package `contract.dir` (the module's own
/// sections were dropped by [`additions::apply`]).
fn embed_contract(module: &mut Vec<u8>, contract: &args::Contract) -> Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) =
        resolve.push_dir(&contract.dir).with_context(|| format!("reading the WIT package in {}", contract.dir))?;
    let world = resolve.select_world(&[package], Some(&contract.world))?;
    wit_component::embed_component_metadata(module, &resolve, world, wit_component::StringEncoding::UTF8, false)
}
