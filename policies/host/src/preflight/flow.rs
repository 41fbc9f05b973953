//! What a function's code makes the compiler hold at once, beyond its locals: values passed through calls and
//! through blocks typed by a function type, and control frames. Measured with wasmtime's Cranelift in the release
//! build (`componentize --shape`, `policies/host/tests/fixtures/README.md`): the compiler's memory for one function
//! grows with the values of every call (about 1 KiB per value passed) and with the square of its control frames
//! (21 600 `block (result i64)` took 1 GB and 3.7 s; 4 000 took 44 MB), times the values of typed blocks
//! (18 000 blocks of 16 values: 14.6 GB), and its time with the square of each call's values. Functions are compiled
//! one at a time, so memory is bounded per function; the time is added to the component's compile weight.

use wasmparser::{BlockType, CompositeInnerType, Operator, TypeSectionReader};

/// Values (parameters and results) of each function type of the core module being read, and the type of each of its
/// functions, imported ones first.
#[derive(Debug, Default)]
pub(super) struct ModuleTypes {
    values: Vec<u32>,
    functions: Vec<u32>,
}

/// What one function's code holds, for the bounds and `policy bench`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// `block`, `loop`, `if` and `try_table` frames.
    pub frames: u32,
    /// Frames typed by a function type (values in and out of the block).
    pub typed_frames: u32,
    /// Sum over calls of 2 + the callee type's values.
    pub call_values: u64,
    /// Sum over calls of the square of that: the compile time of calls grows with it.
    pub call_square: u64,
}

/// Frames whose square adds one unit of compile weight: 4 096 frames (0.24 s) weigh about as much as 250 KB of plain
/// code.
const FRAMES_SQUARED_PER_WEIGHT: u64 = 64;
/// Squared call values per unit of compile weight: 4 000 calls of 32 values in and out (1.5 s) weigh about as
/// much as 1.1 MB of plain code.
const CALL_SQUARE_PER_WEIGHT: u64 = 4;

impl Flow {
    /// The compile weight these add to the function's code (see `preflight::weight`).
    pub fn weight(&self) -> usize {
        let frames = u64::from(self.frames);
        let units =
            (frames * frames / FRAMES_SQUARED_PER_WEIGHT).saturating_add(self.call_square / CALL_SQUARE_PER_WEIGHT);
        usize::try_from(units).unwrap_or(usize::MAX)
    }
}

impl ModuleTypes {
    /// Records a type section; returns how many types it declares.
    pub(super) fn types(&mut self, reader: TypeSectionReader<'_>) -> Result<usize, String> {
        let before = self.values.len();
        for group in reader {
            let group = group.map_err(|e| format!("not a valid component: {e}"))?;
            for ty in group.types() {
                let values = match &ty.composite_type.inner {
                    CompositeInnerType::Func(f) => (f.params().len() + f.results().len()) as u32,
                    _ => 0,
                };
                self.values.push(values);
            }
        }
        Ok(self.values.len() - before)
    }

    /// An imported or defined function of type `ty`.
    pub(super) fn function(&mut self, ty: u32) {
        self.functions.push(ty);
    }

    /// The most values of one type.
    pub(super) fn max_values(&self) -> u32 {
        self.values.iter().copied().max().unwrap_or(0)
    }

    fn type_values(&self, ty: u32) -> u32 {
        self.values.get(ty as usize).copied().unwrap_or(0)
    }

    fn function_values(&self, function: u32) -> u32 {
        self.functions.get(function as usize).map_or(0, |ty| self.type_values(*ty))
    }

    /// Reads one function's operators.
    pub(super) fn flow(&self, body: &wasmparser::FunctionBody<'_>) -> Result<Flow, String> {
        let mut flow = Flow::default();
        let mut reader = body.get_operators_reader().map_err(|e| e.to_string())?;
        while !reader.eof() {
            let op = reader.read().map_err(|e| e.to_string())?;
            let frame = |blockty: &BlockType| Some(matches!(blockty, BlockType::FuncType(_)));
            let typed = match &op {
                Operator::Block { blockty } | Operator::Loop { blockty } | Operator::If { blockty } => frame(blockty),
                Operator::TryTable { try_table } => frame(&try_table.ty),
                _ => None,
            };
            if let Some(typed) = typed {
                flow.frames = flow.frames.saturating_add(1);
                flow.typed_frames = flow.typed_frames.saturating_add(u32::from(typed));
            }
            let callee = match &op {
                Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                    Some(self.function_values(*function_index))
                }
                Operator::CallIndirect { type_index, .. }
                | Operator::ReturnCallIndirect { type_index, .. }
                | Operator::CallRef { type_index }
                | Operator::ReturnCallRef { type_index } => Some(self.type_values(*type_index)),
                _ => None,
            };
            if let Some(values) = callee {
                let values = 2 + u64::from(values);
                flow.call_values = flow.call_values.saturating_add(values);
                flow.call_square = flow.call_square.saturating_add(values * values);
            }
        }
        Ok(flow)
    }
}
