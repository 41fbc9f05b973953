//! The shape of a component, checked before it is compiled: compilation is not covered by fuel, and its cost grows
//! faster than linearly with a function's locals and size, so a small component could otherwise take minutes of CPU
//! in the register allocator. Also refuses what the policy worlds never need (more than one memory, many tables,
//! nested components), with a message naming the bound.

use wasmparser::{Parser, Payload};

use crate::LoadLimits;

/// What was counted, for tests and `policy bench`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub core_modules: usize,
    pub core_instances: usize,
    pub functions: usize,
    pub max_locals: u32,
    pub max_function_bytes: usize,
    pub code_bytes: usize,
    /// Code bytes weighted by locals, see [`weight`].
    pub compile_weight: usize,
    pub memories: usize,
    pub tables: usize,
    /// The component's own imports (not its core modules'), by name and kind.
    pub imports: Vec<(String, ImportKind)>,
    /// The component's own exports, by name.
    pub exports: Vec<String>,
}

/// What a component import is, as far as its binary says without resolving types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// An instance: the contract's type-only interface, or one with functions (decided after compiling).
    Instance,
    /// A type of its own.
    Type,
    /// A function, module, component or value: a capability, never granted.
    Capability,
}

/// Counts the component's parts and checks them against `limits`; the error says which bound was crossed.
pub fn inspect(bytes: &[u8], limits: &LoadLimits) -> Result<Shape, String> {
    if bytes.len() > limits.max_component_bytes {
        return Err(format!("the component is {} bytes, at most {} allowed", bytes.len(), limits.max_component_bytes));
    }
    let mut shape = Shape::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("not a valid component: {e}"))?;
        match payload {
            Payload::Version { encoding: wasmparser::Encoding::Module, .. } if depth == 0 => {
                return Err("a core module, not a component: wrap it with `wasm-tools component new`".into());
            }
            Payload::ComponentSection { .. } => {
                return Err("nested components are not allowed: a policy is one component".into());
            }
            Payload::ModuleSection { .. } => {
                depth += 1;
                shape.core_modules += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    let import = import.map_err(|e| format!("not a valid component: {e}"))?;
                    shape.imports.push((import.name.name.to_string(), import_kind(import.ty)));
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    shape
                        .exports
                        .push(export.map_err(|e| format!("not a valid component: {e}"))?.name.name.to_string());
                }
            }
            Payload::InstanceSection(reader) => shape.core_instances += reader.count() as usize,
            Payload::MemorySection(reader) => shape.memories += reader.count() as usize,
            Payload::TableSection(reader) => shape.tables += reader.count() as usize,
            Payload::CodeSectionEntry(body) => function(&mut shape, &body, limits)?,
            _ => {}
        }
    }
    bounds(&shape, limits)?;
    Ok(shape)
}

fn function(shape: &mut Shape, body: &wasmparser::FunctionBody<'_>, limits: &LoadLimits) -> Result<(), String> {
    let index = shape.functions;
    shape.functions += 1;
    let size = body.range().len();
    if size > limits.max_function_bytes {
        return Err(format!("function {index} is {size} bytes of code, at most {} allowed", limits.max_function_bytes));
    }
    let mut locals = 0u32;
    for group in body.get_locals_reader().map_err(|e| format!("function {index}: {e}"))? {
        let (count, _) = group.map_err(|e| format!("function {index}: {e}"))?;
        locals = locals.saturating_add(count);
        if locals > limits.max_locals {
            return Err(format!("function {index} declares more than {} locals", limits.max_locals));
        }
    }
    shape.code_bytes += size;
    if shape.code_bytes > limits.max_code_bytes {
        return Err(format!("the component has more than {} bytes of code", limits.max_code_bytes));
    }
    shape.compile_weight = shape.compile_weight.saturating_add(weight(size, locals));
    if shape.compile_weight > limits.max_compile_weight {
        return Err(format!(
            "the component's code weighs more than {} (bytes of code weighted by locals: a function of {LOCALS_PER_WEIGHT} \
             locals counts twice its size); it would take too long to compile",
            limits.max_compile_weight
        ));
    }
    shape.max_locals = shape.max_locals.max(locals);
    shape.max_function_bytes = shape.max_function_bytes.max(size);
    Ok(())
}

fn import_kind(ty: wasmparser::ComponentTypeRef) -> ImportKind {
    match ty {
        wasmparser::ComponentTypeRef::Instance(_) => ImportKind::Instance,
        wasmparser::ComponentTypeRef::Type(_) => ImportKind::Type,
        _ => ImportKind::Capability,
    }
}

/// Locals that add one more unit of weight per code byte.
const LOCALS_PER_WEIGHT: u32 = 256;

/// A function's share of the compile: its size, times one more for every [`LOCALS_PER_WEIGHT`] locals. Measured with
/// wasmtime's Cranelift on the compile-bomb pattern (every local live around a dense loop): 2 000 locals cost about
/// 2.6 s per MB of code, 200 locals 0.66 s per MB; ordinary optimised code (the built-ins, at most 54 locals) about
/// 1.6 s per MB. The weight is conservative for the bomb (8.8 vs the measured ~4x).
pub fn weight(size: usize, locals: u32) -> usize {
    size.saturating_mul(1 + (locals / LOCALS_PER_WEIGHT) as usize)
        .saturating_add(size.saturating_mul((locals % LOCALS_PER_WEIGHT) as usize) / LOCALS_PER_WEIGHT as usize)
}

fn bounds(shape: &Shape, limits: &LoadLimits) -> Result<(), String> {
    let checks = [
        ("core modules", shape.core_modules, limits.max_core_modules),
        ("core instances", shape.core_instances, limits.max_core_instances),
        ("functions", shape.functions, limits.max_functions),
        ("tables", shape.tables, limits.max_tables),
    ];
    for (what, count, max) in checks {
        if count > max {
            return Err(format!("the component has {count} {what}, at most {max} allowed"));
        }
    }
    if shape.memories > limits.max_memories {
        return Err(format!(
            "the component defines {} linear memories; a policy has exactly one (the memory cap is per instance)",
            shape.memories
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{BUILTIN_ADAPTIVE_RATE_LIMIT, BUILTIN_ADAPTIVE_TTL};

    fn component(module: &str) -> Vec<u8> {
        wat::parse_str(format!("(component (core module {module}))")).unwrap()
    }

    #[test]
    fn builtins_fit_well_inside_the_bounds() {
        let limits = LoadLimits::default();
        for bytes in [BUILTIN_ADAPTIVE_TTL, BUILTIN_ADAPTIVE_RATE_LIMIT] {
            let shape = inspect(bytes, &limits).unwrap();
            assert_eq!(shape.memories, 1, "{shape:?}");
            assert!(shape.max_locals * 4 < limits.max_locals, "{shape:?}");
            assert!(shape.max_function_bytes * 4 < limits.max_function_bytes, "{shape:?}");
            assert!(shape.functions * 4 < limits.max_functions, "{shape:?}");
            assert!(shape.code_bytes * 4 < limits.max_code_bytes, "{shape:?}");
            assert!(shape.compile_weight * 4 < limits.max_compile_weight, "{shape:?}");
        }
    }

    #[test]
    fn each_bound_is_named_when_crossed() {
        let limits = LoadLimits::default();
        let cases = [
            (
                component("(func (local i64 i64 i64))"),
                LoadLimits { max_locals: 2, ..limits.clone() },
                "more than 2 locals",
            ),
            (
                component("(func nop nop nop)"),
                LoadLimits { max_function_bytes: 3, ..limits.clone() },
                "at most 3 allowed",
            ),
            (component("(func) (func)"), LoadLimits { max_functions: 1, ..limits.clone() }, "2 functions"),
            (
                component("(func nop) (func nop)"),
                LoadLimits { max_code_bytes: 5, ..limits.clone() },
                "than 5 bytes of code",
            ),
            (
                component("(func (local i64) nop) (func nop)"),
                LoadLimits { max_compile_weight: 5, ..limits.clone() },
                "weighs more than 5",
            ),
            (component("(memory 1) (memory 1)"), limits.clone(), "2 linear memories"),
            (
                component("(table 1 funcref) (table 1 funcref)"),
                LoadLimits { max_tables: 1, ..limits.clone() },
                "2 tables",
            ),
            (component("(func)"), LoadLimits { max_component_bytes: 8, ..limits.clone() }, "at most 8 allowed"),
            (wat::parse_str("(module)").unwrap(), limits.clone(), "a core module, not a component"),
            (wat::parse_str("(component (component))").unwrap(), limits.clone(), "nested components"),
            (b"\0asm garbage".to_vec(), limits.clone(), "not a valid component"),
        ];
        for (bytes, limits, expected) in cases {
            let err = inspect(&bytes, &limits).unwrap_err();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }

    #[test]
    fn weight_grows_with_locals() {
        assert_eq!(weight(1000, 0), 1000);
        assert_eq!(weight(1000, 128), 1500);
        assert_eq!(weight(1000, 256), 2000);
        assert_eq!(weight(1000, 2000), 8812);
        assert_eq!(weight(usize::MAX, u32::MAX), usize::MAX);
    }

    #[test]
    fn the_locals_count_cannot_overflow() {
        // One function with two groups of 2^32 - 1 locals: the sum saturates and is refused, it never wraps to a
        // small number. Hand-encoded, since the text format cannot say it.
        let group = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f];
        let body: Vec<u8> = [&[2u8][..], &group, &group, &[0x0b]].concat();
        let code: Vec<u8> = [&[1u8, body.len() as u8][..], &body].concat();
        let module: Vec<u8> = [
            &b"\0asm\x01\0\0\0"[..],
            &[0x01, 0x04, 0x01, 0x60, 0x00, 0x00],
            &[0x03, 0x02, 0x01, 0x00],
            &[0x0a, code.len() as u8],
            &code,
        ]
        .concat();
        let component: Vec<u8> = [&b"\0asm\x0d\0\x01\0"[..], &[0x01, module.len() as u8], &module].concat();
        let err = inspect(&component, &LoadLimits::default()).unwrap_err();
        assert!(err.contains("more than 2000 locals"), "{err}");
    }
}
