//! A "compile bomb": one function that is cheap to validate and expensive to compile. Its i64 locals are all live
//! around a loop whose body reads and writes them in a fixed pseudo-random order, so the register allocator sees
//! thousands of values live at once. Never exported nor called: wasmtime compiles every defined function anyway.

use wasm_encoder::{BlockType, Function, ValType};

/// What wasmparser (and so wasmtime) accepts at most in one function, the parameter included.
const MAX_LOCALS: u32 = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bomb {
    locals: u32,
    ops: u32,
    /// How many such functions (each inside a per-function bound, together over a per-component one).
    count: u32,
}

impl Bomb {
    pub fn new(locals: u32, ops: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("--bomb: COUNT must be at least 1".into());
        }
        if locals == 0 {
            return Err("--bomb: LOCALS must be at least 1".into());
        }
        if locals >= MAX_LOCALS {
            return Err(format!(
                "--bomb: LOCALS must be below {MAX_LOCALS}: with the function's parameter that is the most locals a \
                 function may have (wasmparser's limit: more would fail validation, not stress the compiler)"
            ));
        }
        Ok(Self { locals, ops, count })
    }

    /// The function's type: one `i32` parameter (the loop's exit condition), no results.
    pub fn params() -> [ValType; 1] {
        [ValType::I32]
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// `loop { OPS x (local.get a; local.get b; i64.add; local.set c) ; br_if 0 (param 0) }`, with a, b, c drawn
    /// from a fixed seed: the same arguments always give the same bytes.
    pub fn body(&self) -> Function {
        let mut function = Function::new([(self.locals, ValType::I64)]);
        let mut random = SplitMix64(0x00c0_ffee_5eed);
        // Local 0 is the parameter; the i64 locals are 1..=locals.
        let mut local = || 1 + (random.next() % u64::from(self.locals)) as u32;
        let mut code = function.instructions();
        code.loop_(BlockType::Empty);
        for _ in 0..self.ops {
            code.local_get(local()).local_get(local()).i64_add().local_set(local());
        }
        code.local_get(0).br_if(0).end().end();
        function
    }
}

/// The SplitMix64 generator: small, good enough to scatter local indices, and the same on every machine.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
