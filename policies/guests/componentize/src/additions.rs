//! Changes to a core module before it is wrapped: memories, tables and functions appended after the module's own
//! (so no existing index moves), and optionally its `component-type*` custom sections dropped. The module is
//! re-encoded section by section with `wasm-encoder`'s `Reencode`; a section the module lacks but an addition
//! needs is inserted at its place in the section order.

use crate::bomb::Bomb;
use crate::shape::Shape;
use anyhow::{Context, Result, bail};
use wasm_encoder::reencode::{Error, Reencode, utils};
use wasm_encoder::{
    CodeSection, ElementSection, Elements, ExportKind, ExportSection, Function, FunctionSection, GlobalSection,
    GlobalType, MemorySection, MemoryType, Module, RefType, SectionId, TableSection, TableType, TypeSection, ValType,
};
use wasmparser::{Parser, Validator, WasmFeatures};

#[derive(Debug, Default)]
pub struct Additions {
    /// Drop the custom sections that carry the module's WIT (another contract is embedded afterwards).
    pub strip_component_types: bool,
    pub extra_memory: bool,
    pub extra_tables: u32,
    /// Name of an exported `() -> i32` function returning 0.
    pub export_extra: Option<String>,
    pub bomb: Option<Bomb>,
    pub shape: Option<Shape>,
}

impl Additions {
    pub fn is_empty(&self) -> bool {
        !self.strip_component_types
            && !self.extra_memory
            && self.extra_tables == 0
            && self.export_extra.is_none()
            && self.bomb.is_none()
            && self.shape.is_none()
    }
}

/// Returns `module` with `additions` applied.
pub fn apply(module: &[u8], additions: &Additions) -> Result<Vec<u8>> {
    let types = Validator::new_with_features(WasmFeatures::all())
        .validate_all(module)
        .context("the input is not a valid core module")?;
    let types = types.as_ref();
    if let Some(name) = &additions.export_extra
        && exports(module)?.iter().any(|export| export == name)
    {
        bail!("--export-extra {name}: the module already exports {name}");
    }
    let (first_type, first_function) = (types.core_type_count_in_module(), types.function_count());
    let mut extender = Extender {
        additions,
        functions: appended_functions(additions, first_type, first_function),
        first_type,
        first_function,
        done: Vec::new(),
    };
    let mut out = Module::new();
    extender.parse_core_module(&mut out, Parser::new(0), module).context("re-encoding the core module")?;
    Ok(out.finish())
}

fn exports(module: &[u8]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::ExportSection(section) = payload? {
            for export in section {
                names.push(export?.name.to_string());
            }
        }
    }
    Ok(names)
}

/// An appended function: its type and body.
struct Appended {
    params: Vec<ValType>,
    results: Vec<ValType>,
    body: Function,
}

/// The appended functions, in index order: the exported zero function, then the bomb's, then the shape's.
fn appended_functions(additions: &Additions, first_type: u32, first_function: u32) -> Vec<Appended> {
    let mut functions = Vec::new();
    if additions.export_extra.is_some() {
        let mut body = Function::new([]);
        body.instructions().i32_const(0).end();
        functions.push(Appended { params: vec![], results: vec![ValType::I32], body });
    }
    if let Some(bomb) = &additions.bomb {
        // Copies of one body (the same seed): the compiler's work is per function, identical bodies included.
        for _ in 0..bomb.count() {
            functions.push(Appended { params: Bomb::params().to_vec(), results: vec![], body: bomb.body() });
        }
    }
    if let Some(shape) = &additions.shape {
        let before = functions.len() as u32;
        // The shape's own types come after one type per appended function: count the shape's functions first.
        let own = shape.functions(0, 0).len() as u32;
        let block_type = first_type + before + own;
        for (params, results, body) in shape.functions(first_function + before, block_type) {
            functions.push(Appended { params, results, body });
        }
    }
    functions
}

struct Extender<'a> {
    additions: &'a Additions,
    functions: Vec<Appended>,
    /// Index of the first appended type, and of the first appended function.
    first_type: u32,
    first_function: u32,
    /// Sections whose additions were written (to insert the missing ones once).
    done: Vec<SectionId>,
}

/// The sections an addition may write to, in the order a module holds them.
const SECTIONS: [SectionId; 8] = [
    SectionId::Type,
    SectionId::Function,
    SectionId::Table,
    SectionId::Memory,
    SectionId::Global,
    SectionId::Export,
    SectionId::Element,
    SectionId::Code,
];

impl Extender<'_> {
    fn add_types(&self, types: &mut TypeSection) {
        for function in &self.functions {
            types.ty().function(function.params.iter().copied(), function.results.iter().copied());
        }
        for (params, results) in self.additions.shape.iter().flat_map(Shape::types) {
            types.ty().function(params, results);
        }
    }

    fn add_globals(&self, globals: &mut GlobalSection) {
        let count = self.additions.shape.as_ref().map_or(0, Shape::globals);
        for _ in 0..count {
            let ty = GlobalType { val_type: ValType::V128, mutable: true, shared: false };
            globals.global(ty, &Shape::global_init());
        }
    }

    fn add_elements(&self, elements: &mut ElementSection) {
        if let Some(items) = self.additions.shape.as_ref().and_then(Shape::elements) {
            elements.passive(Elements::Functions(items.into()));
        }
    }

    fn add_functions(&self, functions: &mut FunctionSection) {
        for index in 0..self.functions.len() as u32 {
            functions.function(self.first_type + index);
        }
    }

    fn add_tables(&self, tables: &mut TableSection) {
        for _ in 0..self.additions.extra_tables {
            tables.table(TableType {
                element_type: RefType::FUNCREF,
                table64: false,
                minimum: 1,
                maximum: Some(1),
                shared: false,
            });
        }
    }

    fn add_memories(&self, memories: &mut MemorySection) {
        if self.additions.extra_memory {
            let page =
                MemoryType { minimum: 1, maximum: Some(1), memory64: false, shared: false, page_size_log2: None };
            memories.memory(page);
        }
    }

    fn add_exports(&self, exports: &mut ExportSection) {
        if let Some(name) = &self.additions.export_extra {
            // The zero function comes first among the appended functions.
            exports.export(name, ExportKind::Func, self.first_function);
        }
    }

    fn add_code(&self, code: &mut CodeSection) {
        for function in &self.functions {
            code.function(&function.body);
        }
    }

    /// Whether `section` would hold anything if the module had none.
    fn needed(&self, section: SectionId) -> bool {
        match section {
            SectionId::Type => {
                !self.functions.is_empty() || self.additions.shape.is_some_and(|s| !s.types().is_empty())
            }
            SectionId::Function | SectionId::Code => !self.functions.is_empty(),
            SectionId::Global => self.additions.shape.is_some_and(|s| s.globals() > 0),
            SectionId::Element => self.additions.shape.is_some_and(|s| s.elements().is_some()),
            SectionId::Table => self.additions.extra_tables > 0,
            SectionId::Memory => self.additions.extra_memory,
            SectionId::Export => self.additions.export_extra.is_some(),
            _ => false,
        }
    }

    /// Writes the sections the module lacks: called for `section` just before `before` (None: the end).
    fn insert_missing(&mut self, module: &mut Module, before: Option<SectionId>) {
        for section in SECTIONS {
            let comes_first = before.is_none_or(|before| order(section) < order(before));
            if !comes_first || self.done.contains(&section) || !self.needed(section) {
                continue;
            }
            match section {
                SectionId::Type => module.section(&with(|s| self.add_types(s))),
                SectionId::Function => module.section(&with(|s| self.add_functions(s))),
                SectionId::Table => module.section(&with(|s| self.add_tables(s))),
                SectionId::Memory => module.section(&with(|s| self.add_memories(s))),
                SectionId::Global => module.section(&with(|s| self.add_globals(s))),
                SectionId::Export => module.section(&with(|s| self.add_exports(s))),
                SectionId::Element => module.section(&with(|s| self.add_elements(s))),
                _ => module.section(&with(|s| self.add_code(s))),
            };
            self.done.push(section);
        }
    }
}

fn with<S: Default>(fill: impl FnOnce(&mut S)) -> S {
    let mut section = S::default();
    fill(&mut section);
    section
}

/// Position of a section in a module (the binary format's order is not the order of the ids).
fn order(section: SectionId) -> u8 {
    match section {
        SectionId::Custom => 0,
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
    }
}

type Parsed = Result<(), Error<std::convert::Infallible>>;

/// Each section the additions touch: the module's entries, then the additions.
impl Reencode for Extender<'_> {
    type Error = std::convert::Infallible;

    fn parse_type_section(&mut self, types: &mut TypeSection, section: wasmparser::TypeSectionReader<'_>) -> Parsed {
        utils::parse_type_section(self, types, section)?;
        self.add_types(types);
        self.done.push(SectionId::Type);
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Parsed {
        utils::parse_function_section(self, functions, section)?;
        self.add_functions(functions);
        self.done.push(SectionId::Function);
        Ok(())
    }

    fn parse_table_section(
        &mut self,
        tables: &mut TableSection,
        section: wasmparser::TableSectionReader<'_>,
    ) -> Parsed {
        utils::parse_table_section(self, tables, section)?;
        self.add_tables(tables);
        self.done.push(SectionId::Table);
        Ok(())
    }

    fn parse_memory_section(
        &mut self,
        memories: &mut MemorySection,
        section: wasmparser::MemorySectionReader<'_>,
    ) -> Parsed {
        utils::parse_memory_section(self, memories, section)?;
        self.add_memories(memories);
        self.done.push(SectionId::Memory);
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Parsed {
        utils::parse_global_section(self, globals, section)?;
        self.add_globals(globals);
        self.done.push(SectionId::Global);
        Ok(())
    }

    fn parse_element_section(
        &mut self,
        elements: &mut ElementSection,
        section: wasmparser::ElementSectionReader<'_>,
    ) -> Parsed {
        utils::parse_element_section(self, elements, section)?;
        self.add_elements(elements);
        self.done.push(SectionId::Element);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Parsed {
        utils::parse_export_section(self, exports, section)?;
        self.add_exports(exports);
        self.done.push(SectionId::Export);
        Ok(())
    }

    fn parse_code_section(&mut self, code: &mut CodeSection, section: wasmparser::CodeSectionReader<'_>) -> Parsed {
        utils::parse_code_section(self, code, section)?;
        self.add_code(code);
        self.done.push(SectionId::Code);
        Ok(())
    }

    fn parse_custom_section(&mut self, module: &mut Module, section: wasmparser::CustomSectionReader<'_>) -> Parsed {
        if self.additions.strip_component_types && section.name().starts_with("component-type") {
            return Ok(());
        }
        utils::parse_custom_section(self, module, section)
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Parsed {
        self.insert_missing(module, before);
        Ok(())
    }
}
