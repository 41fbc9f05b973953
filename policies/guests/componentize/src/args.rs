//! The command line, parsed by hand (five options do not need a parser crate).

use crate::additions::Additions;
use crate::bomb::Bomb;
use crate::shape::Shape;

pub const USAGE: &str = "usage: componentize [--wit DIR --world NAME] [--extra-memory] [--extra-tables N] \
                         [--export-extra NAME] [--bomb LOCALS,OPS[,COUNT]] [--shape KIND,N[,COUNT]] \
                         IN.wasm OUT.wasm";

/// A WIT world to embed in place of the module's own.
pub struct Contract {
    pub dir: String,
    pub world: String,
}

pub struct Args {
    pub input: String,
    pub output: String,
    pub contract: Option<Contract>,
    pub additions: Additions,
}

impl Args {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut args = args.into_iter();
        let (mut wit, mut world) = (None, None);
        let mut additions = Additions::default();
        let mut files = Vec::new();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--wit" => set_once(&mut wit, &arg, Some(value()?))?,
                "--world" => set_once(&mut world, &arg, Some(value()?))?,
                "--extra-memory" => set_once(&mut additions.extra_memory, &arg, true)?,
                "--extra-tables" => set_once(&mut additions.extra_tables, &arg, number(&arg, &value()?)?)?,
                "--export-extra" => set_once(&mut additions.export_extra, &arg, export_name(value()?)?)?,
                "--bomb" => set_once(&mut additions.bomb, &arg, bomb(&value()?)?)?,
                "--shape" => set_once(&mut additions.shape, &arg, Some(Shape::parse(&value()?)?))?,
                "--" => files.extend(args.by_ref()),
                option if option.starts_with("--") => return Err(format!("unknown option {option}")),
                _ => files.push(arg),
            }
        }
        let contract = match (wit, world) {
            (Some(dir), Some(world)) => Some(Contract { dir, world }),
            (None, None) => None,
            _ => return Err("--wit and --world go together".into()),
        };
        additions.strip_component_types = contract.is_some();
        let [input, output] = <[String; 2]>::try_from(files)
            .map_err(|files| format!("expected IN.wasm OUT.wasm, got {} file arguments", files.len()))?;
        Ok(Self { input, output, contract, additions })
    }
}

/// Options are flags or `Option`s; giving one twice is a mistake, not an override.
fn set_once<T: Default + PartialEq>(slot: &mut T, option: &str, value: T) -> Result<(), String> {
    if *slot != T::default() {
        return Err(format!("{option} given twice"));
    }
    *slot = value;
    Ok(())
}

fn number(option: &str, text: &str) -> Result<u32, String> {
    text.parse().map_err(|_| format!("{option}: expected a whole number, got {text:?}"))
}

fn export_name(name: String) -> Result<Option<String>, String> {
    if name.is_empty() { Err("--export-extra: the name is empty".into()) } else { Ok(Some(name)) }
}

fn bomb(text: &str) -> Result<Option<Bomb>, String> {
    let parts: Vec<&str> = text.split(',').collect();
    let (locals, ops, count) = match parts.as_slice() {
        [locals, ops] => (*locals, *ops, "1"),
        [locals, ops, count] => (*locals, *ops, *count),
        _ => return Err(format!("--bomb: expected LOCALS,OPS[,COUNT], got {text:?}")),
    };
    Bomb::new(number("--bomb LOCALS", locals)?, number("--bomb OPS", ops)?, number("--bomb COUNT", count)?).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        Args::parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn plain_form_has_no_additions() {
        let args = parse("in.wasm out.wasm").unwrap();
        assert_eq!((args.input.as_str(), args.output.as_str()), ("in.wasm", "out.wasm"));
        assert!(args.contract.is_none() && args.additions.is_empty());
    }

    #[test]
    fn options_anywhere() {
        let args = parse("--extra-memory in.wasm --extra-tables 8 out.wasm --bomb 10,20,3 --export-extra x").unwrap();
        assert!(args.additions.extra_memory);
        assert_eq!(args.additions.extra_tables, 8);
        assert_eq!(args.additions.export_extra.as_deref(), Some("x"));
        assert_eq!(args.additions.bomb, Some(Bomb::new(10, 20, 3).unwrap()));
        assert_eq!(parse("--bomb 10,20 in out").unwrap().additions.bomb, Some(Bomb::new(10, 20, 1).unwrap()));
    }

    #[test]
    fn wit_strips_the_module_contract() {
        let args = parse("--wit dir --world w in out").unwrap();
        assert!(args.additions.strip_component_types);
    }

    #[test]
    fn mistakes_are_named() {
        for (line, message) in [
            ("in", "expected IN.wasm OUT.wasm, got 1 file arguments"),
            ("--wit dir in out", "--wit and --world go together"),
            ("--extra-tables x in out", "--extra-tables: expected a whole number, got \"x\""),
            ("--extra-tables", "--extra-tables needs a value"),
            ("--bomb 10 in out", "--bomb: expected LOCALS,OPS[,COUNT], got \"10\""),
            ("--bomb 1,2,3,4 in out", "--bomb: expected LOCALS,OPS[,COUNT], got \"1,2,3,4\""),
            ("--bomb 0,10 in out", "--bomb: LOCALS must be at least 1"),
            ("--bomb 10,10,0 in out", "--bomb: COUNT must be at least 1"),
            ("--extra-memory --extra-memory in out", "--extra-memory given twice"),
            ("--memory in out", "unknown option --memory"),
        ] {
            assert_eq!(parse(line).err().as_deref(), Some(message), "{line}");
        }
    }
}
