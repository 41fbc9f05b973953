//! `componentize IN.wasm OUT.wasm`: wraps a core module built with wit-bindgen (its WIT travels in a custom
//! section) into a component, like `wasm-tools component new`, and validates the result.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: componentize IN.wasm OUT.wasm");
        return ExitCode::from(2);
    };
    match componentize(input, output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("componentize {input}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn componentize(input: &str, output: &str) -> Result<(), Box<dyn std::error::Error>> {
    let module = std::fs::read(input)?;
    let component = wit_component::ComponentEncoder::default().module(&module)?.validate(true).encode()?;
    std::fs::write(output, component)?;
    Ok(())
}
