//! The shape of a component, checked before it is compiled: compilation is not covered by fuel, and its cost grows
//! faster than linearly with a function's locals and size, so a small component could otherwise take minutes of CPU
//! in the register allocator. Also refuses what the policy worlds never need (more than one memory, many tables,
//! nested components), with a message naming the bound.

mod flow;

use wasmparser::{Parser, Payload, TypeRef};

use crate::LoadLimits;
pub use flow::Flow;
use flow::ModuleTypes;

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
    /// Core types of every core module, and the component's own type definitions.
    pub types: usize,
    /// Most values (parameters and results) of one function type.
    pub max_type_values: u32,
    /// Function references in element segments, across core modules.
    pub element_items: usize,
    /// Globals defined across core modules (instance memory outside the linear memory's cap).
    pub globals: usize,
    /// The most of each per-function flow measure (`flow`), each over all functions.
    pub max_flow: Flow,
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
    let mut module = ModuleTypes::default();
    let invalid = |e: wasmparser::BinaryReaderError| format!("not a valid component: {e}");
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
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
                module = ModuleTypes::default();
            }
            Payload::TypeSection(reader) => {
                shape.types += module.types(reader)?;
                shape.max_type_values = shape.max_type_values.max(module.max_values());
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let TypeRef::Func(ty) | TypeRef::FuncExact(ty) = import.map_err(invalid)?.ty {
                        module.function(ty);
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    module.function(ty.map_err(invalid)?);
                }
            }
            Payload::CoreTypeSection(reader) => shape.types += reader.count() as usize,
            Payload::ComponentTypeSection(reader) => shape.types += reader.count() as usize,
            Payload::GlobalSection(reader) => shape.globals += reader.count() as usize,
            Payload::ElementSection(reader) => {
                for element in reader {
                    shape.element_items += match element.map_err(invalid)?.items {
                        wasmparser::ElementItems::Functions(items) => items.count() as usize,
                        wasmparser::ElementItems::Expressions(_, items) => items.count() as usize,
                    };
                }
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
            Payload::CodeSectionEntry(body) => function(&mut shape, &body, &module, limits)?,
            _ => {}
        }
    }
    bounds(&shape, limits)?;
    Ok(shape)
}

fn function(
    shape: &mut Shape,
    body: &wasmparser::FunctionBody<'_>,
    module: &ModuleTypes,
    limits: &LoadLimits,
) -> Result<(), String> {
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
    let flow = module.flow(body).map_err(|e| format!("function {index}: {e}"))?;
    flow_bounds(index, &flow, limits)?;
    shape.compile_weight = shape.compile_weight.saturating_add(weight(size, locals)).saturating_add(flow.weight());
    if shape.compile_weight > limits.max_compile_weight {
        return Err(format!(
            "the component's code weighs more than {} (bytes of code weighted by locals: a function of {LOCALS_PER_WEIGHT} \
             locals counts twice its size; plus its blocks and the values of its calls); it would take too long to \
             compile",
            limits.max_compile_weight
        ));
    }
    shape.max_flow = Flow {
        frames: shape.max_flow.frames.max(flow.frames),
        typed_frames: shape.max_flow.typed_frames.max(flow.typed_frames),
        call_values: shape.max_flow.call_values.max(flow.call_values),
        call_square: shape.max_flow.call_square.max(flow.call_square),
    };
    shape.max_locals = shape.max_locals.max(locals);
    shape.max_function_bytes = shape.max_function_bytes.max(size);
    Ok(())
}

/// The per-function bounds of `flow`: what one function makes the compiler hold at once.
fn flow_bounds(index: usize, flow: &Flow, limits: &LoadLimits) -> Result<(), String> {
    if flow.frames > limits.max_frames {
        return Err(format!(
            "function {index} has {} blocks, loops and ifs, at most {} allowed (the compiler's memory grows with \
             their square)",
            flow.frames, limits.max_frames
        ));
    }
    if flow.typed_frames > limits.max_typed_frames {
        return Err(format!(
            "function {index} has {} blocks, loops and ifs that pass values in or several out, at most {} allowed",
            flow.typed_frames, limits.max_typed_frames
        ));
    }
    if flow.call_values > limits.max_call_values {
        return Err(format!(
            "function {index}'s calls pass {} values in and out (each call counts 2 more), at most {} allowed",
            flow.call_values, limits.max_call_values
        ));
    }
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
    let component_wide = [
        ("types", shape.types, limits.max_types, "core and component types"),
        ("element items", shape.element_items, limits.max_element_items, "function references in element segments"),
        ("globals", shape.globals, limits.max_globals, "globals (each held by every instance, outside its memory cap)"),
    ];
    for (what, count, max, meaning) in component_wide {
        if count > max {
            return Err(format!("the component has {count} {what}, at most {max} allowed ({meaning})"));
        }
    }
    if shape.max_type_values > limits.max_type_values {
        return Err(format!(
            "a function type of the component has {} parameters and results, at most {} allowed",
            shape.max_type_values, limits.max_type_values
        ));
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
#[path = "preflight/tests.rs"]
mod tests;
