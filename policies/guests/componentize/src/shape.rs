//! Compile-cost shapes other than locals (`--shape KIND,N[,COUNT]`): each drives the compiler's or the runtime's
//! memory by something the bomb's locals do not, to find and hold the host's bounds on it (see
//! `policies/host/src/preflight.rs`). Deterministic: the same arguments always give the same bytes.
//!
//! - `calls,N,COUNT[,REPEAT]`: a function passing N i64 values in and out, and COUNT functions calling it back to back
//!   REPEAT times (by default as often as a function's code bound allows), the N values flowing from call to call;
//! - `blocks,N,COUNT[,REPEAT]`: COUNT functions of REPEAT back-to-back `block`s (by default as many as fit), each
//!   taking and giving back N i64 values;
//! - `elements,N`: one passive element segment of N function references;
//! - `types,N`: N distinct function types, used by nothing;
//! - `globals,N`: N mutable v128 globals (instance memory outside the linear memory and its cap).

use wasm_encoder::{BlockType, ConstExpr, Function, ValType};

/// Code bytes of one filled function body: under the host's per-function bound (128 KiB) with room for the rest.
const FILL_BYTES: usize = 130_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Calls,
    Blocks,
    Results,
    Elements,
    Types,
    Globals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub kind: Kind,
    pub n: u32,
    pub count: u32,
    /// Calls or blocks per function; by default as many as fit.
    pub repeat: Option<u32>,
}

impl Shape {
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(',').collect();
        let number = |what: &str, t: &str| {
            t.parse::<u32>().map_err(|_| format!("--shape {what}: expected a whole number, got {t:?}"))
        };
        let (kind, n, count, repeat) = match parts.as_slice() {
            [kind, n] => (*kind, number("N", n)?, 1, None),
            [kind, n, count] => (*kind, number("N", n)?, number("COUNT", count)?, None),
            [kind, n, count, repeat] => {
                (*kind, number("N", n)?, number("COUNT", count)?, Some(number("REPEAT", repeat)?))
            }
            _ => return Err(format!("--shape: expected KIND,N[,COUNT[,REPEAT]], got {text:?}")),
        };
        let kind = match kind {
            "calls" => Kind::Calls,
            "blocks" => Kind::Blocks,
            "results" => Kind::Results,
            "elements" => Kind::Elements,
            "types" => Kind::Types,
            "globals" => Kind::Globals,
            other => return Err(format!("--shape: unknown kind {other:?}: calls, blocks, elements, types or globals")),
        };
        if n == 0 || count == 0 {
            return Err("--shape: N and COUNT must be at least 1".into());
        }
        if (count > 1 || repeat.is_some()) && !matches!(kind, Kind::Calls | Kind::Blocks | Kind::Results) {
            return Err("--shape: COUNT and REPEAT are for calls and blocks".into());
        }
        Ok(Self { kind, n, count, repeat })
    }

    /// Function types used by nothing but a block (`blocks`) or standing alone (`types`), appended after the
    /// appended functions' own types.
    pub fn types(&self) -> Vec<(Vec<ValType>, Vec<ValType>)> {
        match self.kind {
            Kind::Blocks => vec![(i64s(self.n), i64s(self.n))],
            // Distinct by their parameters: the bits of the index, as i32 (0) or i64 (1).
            Kind::Types => {
                let bits = (32 - self.n.leading_zeros()).max(1);
                (0..self.n)
                    .map(|k| {
                        ((0..bits).map(|b| if k >> b & 1 == 1 { ValType::I64 } else { ValType::I32 }).collect(), vec![])
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Appended functions as (params, results, body); `first` is the index the first of them will have, `block_type`
    /// the index of the first type of [`Shape::types`].
    pub fn functions(&self, first: u32, block_type: u32) -> Vec<(Vec<ValType>, Vec<ValType>, Function)> {
        match self.kind {
            Kind::Calls => {
                let mut callee = Function::new([]);
                let mut code = callee.instructions();
                for i in 0..self.n {
                    code.local_get(i);
                }
                code.end();
                let mut out = vec![(i64s(self.n), i64s(self.n), callee)];
                let repeat = self.repeat.map_or_else(|| fill(self.n, 5), |r| r as usize);
                for _ in 0..self.count {
                    out.push((
                        vec![],
                        vec![],
                        flowing(self.n, repeat, |code| {
                            code.call(first);
                        }),
                    ));
                }
                out
            }
            Kind::Blocks => {
                let repeat = self.repeat.map_or_else(|| fill(self.n, 7), |r| r as usize);
                let ty = BlockType::FunctionType(block_type);
                (0..self.count)
                    .map(|_| {
                        (
                            vec![],
                            vec![],
                            flowing(self.n, repeat, |code| {
                                code.block(ty).end();
                            }),
                        )
                    })
                    .collect()
            }
            Kind::Results => {
                let repeat = self.repeat.map_or_else(|| fill(0, 6), |r| r as usize);
                (0..self.count)
                    .map(|_| {
                        (
                            vec![],
                            vec![],
                            flowing(0, repeat, |code| {
                                code.block(BlockType::Result(ValType::I64)).i64_const(0).end().drop();
                            }),
                        )
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Function indices of the passive element segment, all naming function 0.
    pub fn elements(&self) -> Option<Vec<u32>> {
        (self.kind == Kind::Elements).then(|| vec![0; self.n as usize])
    }

    /// Initial values of the appended globals.
    pub fn globals(&self) -> usize {
        if self.kind == Kind::Globals { self.n as usize } else { 0 }
    }

    pub fn global_init() -> ConstExpr {
        ConstExpr::v128_const(0)
    }
}

fn i64s(n: u32) -> Vec<ValType> {
    vec![ValType::I64; n as usize]
}

/// How many `per`-byte steps fit in a filled body after pushing and dropping `n` values (2 and 1 bytes each).
fn fill(n: u32, per: usize) -> usize {
    FILL_BYTES.saturating_sub(3 * n as usize).max(per) / per
}

/// `n x i64.const 0; repeat x step; n x drop`: the n values flow through every step.
fn flowing(n: u32, repeat: usize, mut step: impl FnMut(&mut wasm_encoder::InstructionSink<'_>)) -> Function {
    let mut function = Function::new([]);
    let mut code = function.instructions();
    for _ in 0..n {
        code.i64_const(0);
    }
    for _ in 0..repeat {
        step(&mut code);
    }
    for _ in 0..n {
        code.drop();
    }
    code.end();
    function
}
