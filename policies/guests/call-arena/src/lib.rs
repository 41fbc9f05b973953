//! A global allocator for policy guests: bump allocation in one arena at the end of linear memory, which starts
//! over whenever no allocation is live.
//!
//! A policy call allocates a few dozen blocks (the input's list and strings, the output) and frees them all before
//! the next call: the guest drops its input, and the host's post-return call frees the output. So between calls
//! nothing is live and the arena rewinds to its start. Allocating is a pointer bump and freeing a counter decrement;
//! dlmalloc's `malloc` and `free` were about a tenth of a warm call in a perf profile.
//!
//! The price: memory is reused only when every allocation is freed. A guest that keeps heap memory across calls
//! (a cache in a `static`) would stop the rewinds and grow until the host's memory cap stops it; the host then
//! reports `out_of_memory` and starts a fresh instance. Keep state across calls inline (see the settings cache in
//! `perf-policy-algorithms`) or use the default allocator. No crate on crates.io does this rewind alone (silly-alloc
//! and lol_alloc only leak; concordium-std has one inside its contract SDK), so it is written here.
#![no_std]
// Only WASM guests use it: it grows linear memory 0 itself.
#![cfg(target_arch = "wasm32")]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ptr::null_mut;

const PAGE: usize = 64 * 1024;

/// The allocator. Declare it with `#[global_allocator] static ARENA: CallArena = CallArena::new();`.
pub struct CallArena {
    /// First byte of the arena; 0 until the first allocation.
    start: Cell<usize>,
    /// Next free byte.
    next: Cell<usize>,
    /// End of linear memory, which is the end of the arena (nothing else grows memory once this is the allocator).
    end: Cell<usize>,
    /// Allocations not yet freed.
    live: Cell<usize>,
}

// SAFETY: wasm32 guests built without the `atomics` feature run on one thread, so the cells are never shared.
#[cfg(not(target_feature = "atomics"))]
unsafe impl Sync for CallArena {}

impl CallArena {
    pub const fn new() -> Self {
        Self { start: Cell::new(0), next: Cell::new(0), end: Cell::new(0), live: Cell::new(0) }
    }

    /// Reserves `size` bytes aligned to `align`, growing memory when needed; `None` when memory cannot grow.
    fn bump(&self, size: usize, align: usize) -> Option<usize> {
        if self.start.get() == 0 {
            // Begin past everything the linker placed (data, stack): at the current end of memory.
            let end = memory::size_in_bytes();
            self.start.set(end);
            self.next.set(end);
            self.end.set(end);
        }
        let at = self.next.get().checked_next_multiple_of(align)?;
        let after = at.checked_add(size)?;
        if after > self.end.get() {
            let pages = (after - self.end.get()).div_ceil(PAGE);
            self.end.set(memory::grow(pages)?);
        }
        self.next.set(after);
        Some(at)
    }
}

impl Default for CallArena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks never overlap (each is carved past the previous `next`, inside memory the arena grew), and the
// arena rewinds only when no block is live or over the last block handed out when that block is freed.
unsafe impl GlobalAlloc for CallArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout.size(), layout.align()) {
            Some(at) => {
                self.live.set(self.live.get() + 1);
                at as *mut u8
            }
            None => null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let live = self.live.get().saturating_sub(1);
        self.live.set(live);
        if live == 0 {
            self.next.set(self.start.get());
        } else if ptr as usize + layout.size() == self.next.get() {
            // The last block: give its bytes back at once (a Vec growing at the end of the arena, for one).
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = ptr as usize;
        if at + layout.size() == self.next.get() {
            // The last block grows or shrinks in place.
            let Some(after) = at.checked_add(new_size) else { return null_mut() };
            if after > self.end.get() {
                match memory::grow((after - self.end.get()).div_ceil(PAGE)) {
                    Some(end) => self.end.set(end),
                    None => return null_mut(),
                }
            }
            self.next.set(after);
            return ptr;
        }
        // SAFETY: the caller's contract for `realloc` (valid `ptr` and `layout`, non-zero `new_size`) is passed on.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

mod memory {
    use super::PAGE;

    pub fn size_in_bytes() -> usize {
        core::arch::wasm32::memory_size(0) * PAGE
    }

    /// Grows memory 0 by `pages`; the new end of memory in bytes, or `None` when the host refuses.
    pub fn grow(pages: usize) -> Option<usize> {
        let before = core::arch::wasm32::memory_grow(0, pages);
        (before != usize::MAX).then(|| (before + pages) * PAGE)
    }
}
