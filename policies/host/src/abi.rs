//! How the list elements cross the boundary: `ttl-class` and `route-state` into the guest, `class-decision` and
//! `route-limit` out of it.
//!
//! The host's [`TtlClass`] and [`RouteState`] carry a name (for status, the CLI's JSON and error messages) that the
//! WIT records leave out (see `ttl-class` in `policy.wit`). So their component type is that of a private twin
//! without the name, derived by wasmtime (which also typechecks it against the guest's WIT at load), and their
//! lowering is written here.
//!
//! It is also faster: the derived `Lower` stores a list of records field by field, and each store looks up the
//! guest's memory anew (`LowerContext::get`): for 20 routes ~200 lookups, 40 % of a warm call (perf profile). Here
//! one memory slice takes every field of every element. The byte offsets are the canonical ABI's, checked at compile
//! time against the twins' sizes and in the tests field by field.
//!
//! The outputs' elements are lifted by hand too: the derived code recomputes each field's offset at run time for
//! every element (3 % of a 20-route call in the profile).
//!
//! The trait items used here are the ones wasmtime's derive macros use, which wasmtime keeps outside its stability
//! guarantees: a wasmtime upgrade must rerun these tests and the conformance tests.

use std::mem::MaybeUninit;

use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, LowerContext};
use wasmtime::component::{ComponentType, Lift, Lower};

use crate::types::{ClassDecision, RouteLimit, RouteState, RouteTraffic, TtlClass};

/// `ttl-class` as the WIT declares it (`pub` only because it appears in `TtlClass`'s `ComponentType`).
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(record)]
pub struct TtlClassWire {
    #[component(name = "ttl-seconds")]
    ttl_seconds: u32,
    #[component(name = "spec-ttl-seconds")]
    spec_ttl_seconds: u32,
}

/// `route-state` as the WIT declares it.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(record)]
pub struct RouteStateWire {
    #[component(name = "requests-per-second")]
    requests_per_second: u32,
    burst: u32,
    #[component(name = "spec-requests-per-second")]
    spec_requests_per_second: u32,
    #[component(name = "spec-burst")]
    spec_burst: u32,
    traffic: Option<RouteTraffic>,
}

impl From<&TtlClass> for TtlClassWire {
    fn from(c: &TtlClass) -> Self {
        Self { ttl_seconds: c.ttl_seconds, spec_ttl_seconds: c.spec_ttl_seconds }
    }
}

impl From<&RouteState> for RouteStateWire {
    fn from(r: &RouteState) -> Self {
        Self {
            requests_per_second: r.requests_per_second,
            burst: r.burst,
            spec_requests_per_second: r.spec_requests_per_second,
            spec_burst: r.spec_burst,
            traffic: r.traffic,
        }
    }
}

/// Byte offsets inside one `ttl-class` element.
mod ttl_class {
    pub const TTL_SECONDS: usize = 0;
    pub const SPEC_TTL_SECONDS: usize = 4;
    pub const SIZE: usize = 8;
}

/// Byte offsets inside one `route-state` element; `traffic` is an option: a tag byte, then the 8-aligned record of
/// four f64.
mod route_state {
    pub const REQUESTS_PER_SECOND: usize = 0;
    pub const BURST: usize = 4;
    pub const SPEC_REQUESTS_PER_SECOND: usize = 8;
    pub const SPEC_BURST: usize = 12;
    pub const TRAFFIC_TAG: usize = 16;
    pub const TRAFFIC: usize = 24;
    pub const SIZE: usize = 56;
}

/// `class-decision`: `ttl-seconds` (u32) at 0, `admit` (bool, one byte) at 4. `route-limit`: two u32.
const OUTPUT_ELEMENT_SIZE: usize = 8;

const _: () = assert!(ClassDecision::SIZE32 == OUTPUT_ELEMENT_SIZE && RouteLimit::SIZE32 == OUTPUT_ELEMENT_SIZE);
const _: () = assert!(TtlClassWire::SIZE32 == ttl_class::SIZE);
const _: () = assert!(RouteStateWire::SIZE32 == route_state::SIZE);

/// The bytes of `count` elements of `size` at `offset`. wasmtime allocated and bounds-checked them before asking
/// for the elements, so a miss is a host bug, reported as an error rather than a panic.
fn elements<'m, T>(
    cx: &'m mut LowerContext<'_, T>,
    offset: usize,
    count: usize,
    size: usize,
) -> wasmtime::Result<&'m mut [u8]> {
    let len = count.checked_mul(size).ok_or_else(|| wasmtime::Error::msg("list too long"))?;
    cx.as_slice_mut()
        .get_mut(offset..)
        .and_then(|m| m.get_mut(..len))
        .ok_or_else(|| wasmtime::Error::msg("list storage outside the guest's memory"))
}

fn put_u32(element: &mut [u8], at: usize, value: u32) {
    element[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_f64(element: &mut [u8], at: usize, value: f64) {
    element[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// `ComponentType` and `Lower` for a host type whose component type is that of its wire twin: single values go
/// through the twin's derived code, lists through `$store_list`.
macro_rules! lower_as_twin {
    ($host:ty, $wire:ty, $store_list:path) => {
        // SAFETY: the component type, flat layout and ABI are exactly the derived ones of the twin.
        unsafe impl ComponentType for $host {
            type Lower = <$wire as ComponentType>::Lower;
            const ABI: CanonicalAbiInfo = <$wire as ComponentType>::ABI;
            const MAY_REQUIRE_REALLOC: bool = <$wire as ComponentType>::MAY_REQUIRE_REALLOC;

            fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
                <$wire as ComponentType>::typecheck(ty, types)
            }
        }

        // SAFETY: single values are the twin's derived lowering; lists write the twin's canonical layout (offsets
        // asserted above and tested) only inside the element storage wasmtime allocated.
        unsafe impl Lower for $host {
            fn linear_lower_to_flat<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                ty: InterfaceType,
                dst: &mut MaybeUninit<Self::Lower>,
            ) -> wasmtime::Result<()> {
                <$wire>::from(self).linear_lower_to_flat(cx, ty, dst)
            }

            fn linear_lower_to_memory<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                ty: InterfaceType,
                offset: usize,
            ) -> wasmtime::Result<()> {
                <$wire>::from(self).linear_lower_to_memory(cx, ty, offset)
            }

            fn linear_store_list_to_memory<T>(
                cx: &mut LowerContext<'_, T>,
                _ty: InterfaceType,
                offset: usize,
                items: &[Self],
            ) -> wasmtime::Result<()> {
                $store_list(cx, offset, items)
            }
        }
    };
}

lower_as_twin!(TtlClass, TtlClassWire, store_ttl_classes);
lower_as_twin!(RouteState, RouteStateWire, store_route_states);

fn store_ttl_classes<T>(cx: &mut LowerContext<'_, T>, offset: usize, items: &[TtlClass]) -> wasmtime::Result<()> {
    use ttl_class as at;
    let memory = elements(cx, offset, items.len(), at::SIZE)?;
    for (element, item) in memory.chunks_exact_mut(at::SIZE).zip(items) {
        put_u32(element, at::TTL_SECONDS, item.ttl_seconds);
        put_u32(element, at::SPEC_TTL_SECONDS, item.spec_ttl_seconds);
    }
    Ok(())
}

fn store_route_states<T>(cx: &mut LowerContext<'_, T>, offset: usize, items: &[RouteState]) -> wasmtime::Result<()> {
    use route_state as at;
    let memory = elements(cx, offset, items.len(), at::SIZE)?;
    for (element, item) in memory.chunks_exact_mut(at::SIZE).zip(items) {
        put_u32(element, at::REQUESTS_PER_SECOND, item.requests_per_second);
        put_u32(element, at::BURST, item.burst);
        put_u32(element, at::SPEC_REQUESTS_PER_SECOND, item.spec_requests_per_second);
        put_u32(element, at::SPEC_BURST, item.spec_burst);
        // The payload of `none` is left as it is: the guest reads only the tag.
        element[at::TRAFFIC_TAG] = u8::from(item.traffic.is_some());
        if let Some(t) = item.traffic {
            put_f64(element, at::TRAFFIC, t.requests_per_second);
            put_f64(element, at::TRAFFIC + 8, t.p99_latency_ms);
            put_f64(element, at::TRAFFIC + 16, t.error_percent);
            put_f64(element, at::TRAFFIC + 24, t.rejected_per_second);
        }
    }
    Ok(())
}

fn u32_at(element: &[u8], at: usize) -> wasmtime::Result<u32> {
    element
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| wasmtime::Error::msg("list element shorter than its type"))
}

fn only_in_lists<T>(what: &str) -> wasmtime::Result<T> {
    wasmtime::bail!("{what} is lifted only as a list element, which is always in memory")
}

// SAFETY: reads the canonical layout of `class-decision` (asserted above, tested) from the element bytes wasmtime
// bounds-checked; any nonzero byte is `true`, as in wasmtime's own `bool`.
unsafe impl Lift for ClassDecision {
    fn linear_lift_from_flat(_: &mut LiftContext<'_>, _: InterfaceType, _: &Self::Lower) -> wasmtime::Result<Self> {
        only_in_lists("class-decision")
    }

    fn linear_lift_from_memory(_: &mut LiftContext<'_>, _: InterfaceType, element: &[u8]) -> wasmtime::Result<Self> {
        let admit = *element.get(4).ok_or_else(|| wasmtime::Error::msg("list element shorter than its type"))?;
        Ok(Self { ttl_seconds: u32_at(element, 0)?, admit: admit != 0 })
    }
}

// SAFETY: as for `ClassDecision`, with the layout of `route-limit`.
unsafe impl Lift for RouteLimit {
    fn linear_lift_from_flat(_: &mut LiftContext<'_>, _: InterfaceType, _: &Self::Lower) -> wasmtime::Result<Self> {
        only_in_lists("route-limit")
    }

    fn linear_lift_from_memory(_: &mut LiftContext<'_>, _: InterfaceType, element: &[u8]) -> wasmtime::Result<Self> {
        Ok(Self { requests_per_second: u32_at(element, 0)?, burst: u32_at(element, 4)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets the canonical ABI gives to a record's fields, computed the way the derived code does.
    fn offsets(fields: &[CanonicalAbiInfo]) -> Vec<usize> {
        let mut offset = 0;
        fields.iter().map(|f| f.next_field32_size(&mut offset)).collect()
    }

    #[test]
    fn output_element_offsets_are_the_canonical_abi() {
        assert_eq!(offsets(&[u32::ABI, bool::ABI]), [0, 4]);
        assert_eq!(offsets(&[u32::ABI, u32::ABI]), [0, 4]);
    }

    #[test]
    fn ttl_class_offsets_are_the_canonical_abi() {
        use ttl_class as at;
        assert_eq!(offsets(&[u32::ABI, u32::ABI]), [at::TTL_SECONDS, at::SPEC_TTL_SECONDS]);
    }

    #[test]
    fn route_state_offsets_are_the_canonical_abi() {
        use route_state as at;
        let fields = [u32::ABI, u32::ABI, u32::ABI, u32::ABI, Option::<RouteTraffic>::ABI];
        assert_eq!(
            offsets(&fields),
            [at::REQUESTS_PER_SECOND, at::BURST, at::SPEC_REQUESTS_PER_SECOND, at::SPEC_BURST, at::TRAFFIC_TAG]
        );
        // The option's payload follows its tag byte at the payload's alignment.
        assert_eq!(at::TRAFFIC - at::TRAFFIC_TAG, RouteTraffic::ALIGN32 as usize);
        assert_eq!(offsets(&[f64::ABI, f64::ABI, f64::ABI, f64::ABI]), [0, 8, 16, 24]);
    }
}
