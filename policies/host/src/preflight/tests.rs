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
        assert!(shape.types * 4 < limits.max_types, "{shape:?}");
        assert!(shape.max_type_values * 4 < limits.max_type_values, "{shape:?}");
        assert!(shape.element_items * 4 < limits.max_element_items, "{shape:?}");
        assert!(shape.globals * 4 < limits.max_globals, "{shape:?}");
        assert!(shape.max_flow.frames * 4 < limits.max_frames, "{shape:?}");
        assert!(shape.max_flow.typed_frames * 4 <= limits.max_typed_frames, "{shape:?}");
        assert!(shape.max_flow.call_values * 4 < limits.max_call_values, "{shape:?}");
        println!("{shape:?}");
    }
}

#[test]
fn each_bound_is_named_when_crossed() {
    let limits = LoadLimits::default();
    let cases = [
        (component("(func (local i64 i64 i64))"), LoadLimits { max_locals: 2, ..limits.clone() }, "more than 2 locals"),
        (component("(func nop nop nop)"), LoadLimits { max_function_bytes: 3, ..limits.clone() }, "at most 3 allowed"),
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
        (component("(table 1 funcref) (table 1 funcref)"), LoadLimits { max_tables: 1, ..limits.clone() }, "2 tables"),
        (component("(func)"), LoadLimits { max_component_bytes: 8, ..limits.clone() }, "at most 8 allowed"),
        (
            component("(type (func)) (type (func (param i32)))"),
            LoadLimits { max_types: 1, ..limits.clone() },
            "2 types, at most 1",
        ),
        (
            component("(func (param i32 i64) (result f32))"),
            LoadLimits { max_type_values: 2, ..limits.clone() },
            "3 parameters and results, at most 2",
        ),
        (
            component("(func) (elem func 0 0 0)"),
            LoadLimits { max_element_items: 2, ..limits.clone() },
            "3 element items, at most 2",
        ),
        (
            component("(global i32 (i32.const 0)) (global i64 (i64.const 0))"),
            LoadLimits { max_globals: 1, ..limits.clone() },
            "2 globals, at most 1",
        ),
        (
            component("(func block end loop end i32.const 0 if end)"),
            LoadLimits { max_frames: 2, ..limits.clone() },
            "function 0 has 3 blocks, loops and ifs, at most 2",
        ),
        (
            component("(type $t (func (param i32) (result i32))) (func i32.const 0 block (type $t) end drop)"),
            LoadLimits { max_typed_frames: 0, ..limits.clone() },
            "1 blocks, loops and ifs that pass values",
        ),
        (
            // Two calls of a function of 2 values: (2 + 2) each.
            component("(func $f (param i32) (result i32) local.get 0) (func i32.const 0 call $f call $f drop)"),
            LoadLimits { max_call_values: 7, ..limits.clone() },
            "function 1's calls pass 8 values in and out",
        ),
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
fn blocks_and_call_values_weigh_on_the_compile() {
    let flow = |frames, call_square| Flow { frames, call_square, ..Flow::default() };
    assert_eq!(flow(0, 0).weight(), 0);
    assert_eq!(flow(4096, 0).weight(), 262_144);
    assert_eq!(flow(0, 4000 * 34 * 34).weight(), 1_156_000);
    assert!(flow(u32::MAX, u64::MAX).weight() > LoadLimits::default().max_compile_weight, "no overflow");
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
