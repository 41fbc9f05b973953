//! Strict identity: a component is loaded only if it was built for a supported version of the `perf:policy`
//! contract, imports nothing but that contract's type-only `types` interface, and exports exactly the functions of
//! the world it is loaded as. (A component does not record its world's *name*: only its imports and exports, which
//! is what is checked here; the export types are checked by wasmtime when the world's bindings are created.)

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::preflight::{ImportKind, Shape};
use crate::{Error, World};

/// The package and version of `policies/wit/policy.wit` (a test keeps them in step).
pub const PACKAGE: &str = "perf:policy";
pub const VERSION: &str = "0.2.0";
/// The one interface a policy imports, for its types only.
const TYPES_INTERFACE: &str = "types";
/// What both worlds export, and nothing else.
const EXPORTS: [&str; 2] = ["validate-settings", "evaluate"];

/// The checks that need only the names in the binary, made before compiling so that a component of the wrong
/// contract costs no compilation: imports the host does not provide (reported first, whatever else is wrong), the
/// version of the `perf:policy/types` import, the world's type names, and the exports. Whether the `types` instance
/// holds only types needs the resolved types: [`check`] decides that after compiling.
pub(crate) fn check_surface(shape: &Shape, sha256: &str, world: World) -> crate::Result<()> {
    let wrong_world = |detail: String| Error::WrongWorld {
        sha256: sha256.to_string(),
        expected: world,
        detail: crate::check::clean(&detail, 2048),
    };
    let contract = format!("{PACKAGE}/{TYPES_INTERFACE}@");
    let forbidden: Vec<&str> = shape
        .imports
        .iter()
        .filter(|(name, kind)| match kind {
            ImportKind::Capability => true,
            ImportKind::Instance => !name.starts_with(&contract),
            ImportKind::Type => false,
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if !forbidden.is_empty() {
        return Err(forbidden_imports(sha256, forbidden));
    }
    let instances: Vec<&String> =
        shape.imports.iter().filter(|(_, kind)| *kind == ImportKind::Instance).map(|(name, _)| name).collect();
    match instances.as_slice() {
        [] => {
            return Err(wrong_world(format!("it does not import {PACKAGE}/types, so its contract version is unknown")));
        }
        [name] => types_import(name).map_err(wrong_world)?,
        names => {
            return Err(wrong_world(format!(
                "it imports {} {PACKAGE}/types instances; a policy imports one",
                names.len()
            )));
        }
    }
    let allowed = world_types(world);
    if let Some((name, _)) =
        shape.imports.iter().find(|(name, kind)| *kind == ImportKind::Type && !allowed.contains(&name.as_str()))
    {
        return Err(wrong_world(format!("it imports the type {name:?}; the {world} world uses only {allowed:?}")));
    }
    exports(&shape.exports, world).map_err(wrong_world)
}

/// Most import names a refusal lists: a component may have thousands.
const LISTED_IMPORTS: usize = 8;

/// The refusal of `names`, listing the first few, each cleaned like any policy-provided text.
fn forbidden_imports(sha256: &str, names: Vec<&str>) -> Error {
    let mut imports: Vec<String> = names.iter().take(LISTED_IMPORTS).map(|n| crate::check::clean(n, 128)).collect();
    if names.len() > LISTED_IMPORTS {
        imports.push(format!("and {} more", names.len() - LISTED_IMPORTS));
    }
    Error::ForbiddenImports { sha256: sha256.to_string(), imports }
}

/// The types a world's functions use, imported by name from the `types` interface.
fn world_types(world: World) -> [&'static str; 2] {
    match world {
        World::Cache => ["cache-input", "cache-output"],
        World::RateLimit => ["rate-limit-input", "rate-limit-output"],
    }
}

/// Exactly the world's exports, none missing, none extra.
fn exports(exports: &[String], world: World) -> Result<(), String> {
    if let Some(extra) = exports.iter().find(|name| !EXPORTS.contains(&name.as_str())) {
        return Err(format!("it exports {extra:?}; the {world} world exports exactly {EXPORTS:?}"));
    }
    if let Some(missing) = EXPORTS.iter().find(|name| !exports.iter().any(|e| e == *name)) {
        return Err(format!("it does not export {missing:?}"));
    }
    Ok(())
}

/// Checks imports and exports; returns the names of the type-only instances the linker must define.
pub(crate) fn check(engine: &Engine, component: &Component, sha256: &str, world: World) -> crate::Result<Vec<String>> {
    // Names come from the component: cleaned like any policy-provided text before they reach a message.
    let wrong_world = |detail: String| Error::WrongWorld {
        sha256: sha256.to_string(),
        expected: world,
        detail: crate::check::clean(&detail, 2048),
    };
    let ty = component.component_type();
    let mut type_only = Vec::new();
    let mut forbidden = Vec::new();
    let mut types = Vec::new();
    for (name, item) in ty.imports(engine) {
        match item.ty {
            ComponentItem::ComponentInstance(instance)
                if instance.exports(engine).all(|(_, export)| matches!(export.ty, ComponentItem::Type(_))) =>
            {
                type_only.push(name.to_string());
            }
            ComponentItem::Type(_) => types.push(name.to_string()),
            _ => forbidden.push(name),
        }
    }
    // A capability is the graver fault: reported before any other mismatch.
    if !forbidden.is_empty() {
        return Err(forbidden_imports(sha256, forbidden));
    }
    let allowed = world_types(world);
    if let Some(name) = types.iter().find(|name| !allowed.contains(&name.as_str())) {
        return Err(wrong_world(format!("it imports the type {name:?}; the {world} world uses only {allowed:?}")));
    }
    match type_only.as_slice() {
        [name] => types_import(name).map_err(wrong_world)?,
        [] => {
            return Err(wrong_world(format!("it does not import {PACKAGE}/types, so its contract version is unknown")));
        }
        names => return Err(wrong_world(format!("it imports {names:?}; policies import only {PACKAGE}/types"))),
    }
    let names: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    exports(&names, world).map_err(wrong_world)?;
    Ok(type_only)
}

/// `perf:policy/types@X.Y.Z` with a version this host supports.
fn types_import(name: &str) -> Result<(), String> {
    let (path, version) = name.split_once('@').ok_or_else(|| format!("it imports {name:?} without a version"))?;
    if path != format!("{PACKAGE}/{TYPES_INTERFACE}") {
        return Err(format!("it imports {name:?}; a policy is built for {PACKAGE}/{TYPES_INTERFACE}"));
    }
    let found = semver::Version::parse(version).map_err(|e| format!("it imports {name:?}: bad version: {e}"))?;
    if supports(&found) {
        Ok(())
    } else {
        Err(format!("it was built for {PACKAGE}@{found}; this operator supports {PACKAGE}@{} ({})", VERSION, RULE))
    }
}

const RULE: &str = "same major version and a minor version no newer than the host's; below 1.0 the minor version \
                    counts as the major";

/// The rule stated in `policy.wit`: additive changes bump the minor version. A component built against an older
/// minor version works on a newer host; one built against a newer minor version may use what this host lacks. Below
/// 1.0 every minor version may break (semver), so it must match. Patch versions never change the contract.
/// Pre-release versions are refused: they promise nothing.
pub fn supports(found: &semver::Version) -> bool {
    let host = host_version();
    found.pre.is_empty()
        && found.major == host.major
        && if host.major == 0 { found.minor == host.minor } else { found.minor <= host.minor }
}

fn host_version() -> semver::Version {
    // VERSION is a constant checked by a test; a parse failure would be a build mistake, so fall back to "nothing".
    semver::Version::parse(VERSION).unwrap_or_else(|_| semver::Version::new(u64::MAX, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_wit() {
        let wit = include_str!("../../wit/policy.wit");
        assert!(wit.contains(&format!("package {PACKAGE}@{VERSION};")), "policy.wit's package line changed");
        assert!(semver::Version::parse(VERSION).is_ok());
    }

    #[test]
    fn version_rule() {
        let cases = [
            ("0.2.0", true),
            ("0.2.1", true),
            ("0.2.99", true),
            ("0.1.0", false),
            ("0.3.0", false),
            ("1.2.0", false),
            ("99.0.0", false),
            ("0.2.0-rc.1", false),
        ];
        for (version, expected) in cases {
            assert_eq!(supports(&semver::Version::parse(version).unwrap()), expected, "{version}");
        }
    }

    fn shape(imports: &[(&str, ImportKind)], exports: &[&str]) -> Shape {
        Shape {
            imports: imports.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
            exports: exports.iter().map(|e| e.to_string()).collect(),
            ..Shape::default()
        }
    }

    #[test]
    fn the_surface_is_checked_before_compiling_forbidden_imports_first() {
        use ImportKind::{Capability, Instance, Type};
        let types = ("perf:policy/types@0.2.0", Instance);
        let both = ["validate-settings", "evaluate"];
        let cases: Vec<(Shape, World, &str)> = vec![
            (shape(&[types, ("cache-input", Type), ("cache-output", Type)], &both), World::Cache, "ok"),
            // A capability is reported even when the contract version and the exports are wrong too.
            (
                shape(&[("perf:policy/types@9.0.0", Instance), ("wasi:cli/env", Capability)], &[]),
                World::Cache,
                "forbidden_import",
            ),
            (shape(&[types, ("wasi:io/streams@0.2.0", Instance)], &both), World::Cache, "forbidden_import"),
            (shape(&[types, types], &both), World::Cache, "wrong_world"),
            (shape(&[types, ("rate-limit-input", Type)], &both), World::Cache, "wrong_world"),
            (shape(&[types], &["evaluate"]), World::Cache, "wrong_world"),
            (shape(&[("perf:policy/types@0.3.0", Instance)], &both), World::RateLimit, "wrong_world"),
            (shape(&[], &both), World::Cache, "wrong_world"),
        ];
        for (shape, world, expected) in cases {
            let got = check_surface(&shape, "d", world).err().map_or("ok", |e| e.category());
            assert_eq!(got, expected, "{:?}", shape.imports);
        }
    }

    #[test]
    fn a_refusal_lists_a_few_imports_and_counts_the_rest() {
        let names: Vec<String> = (0..5000).map(|i| format!("evil:x/i{i}@1.0.0")).collect();
        let imports: Vec<(&str, ImportKind)> = names.iter().map(|n| (n.as_str(), ImportKind::Capability)).collect();
        let err = check_surface(&shape(&imports, &[]), "d", World::Cache).unwrap_err().to_string();
        assert!(err.contains("evil:x/i7@1.0.0") && !err.contains("evil:x/i8@"), "{err}");
        assert!(err.contains("and 4992 more") && err.len() < 1024, "{err}");
    }

    #[test]
    fn types_import_names() {
        assert_eq!(types_import("perf:policy/types@0.2.0"), Ok(()));
        let err = |name: &str| types_import(name).unwrap_err();
        assert!(err("perf:policy/types").contains("without a version"));
        assert!(err("evil:policy/types@0.2.0").contains("built for perf:policy/types"));
        assert!(err("perf:policy/other@0.2.0").contains("built for perf:policy/types"));
        assert!(err("perf:policy/types@0.1.0").contains("built for perf:policy@0.1.0"));
        assert!(err("perf:policy/types@x").contains("bad version"));
    }
}
