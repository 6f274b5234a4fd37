//! Blocks of TCP ports for running workstreams: `FLOW_PORT` is the first, `FLOW_PORT_COUNT`
//! how many follow it.
//!
//! A block is handed out only when none of its ports is held by another block of this
//! process and each of them can be bound on the loopback address at that moment, so two
//! dev servers of two workstreams never fight over a port. It stays taken until its
//! [`PortBlock`] is dropped (the end of the run). Other processes are not asked: blocks start
//! at a place derived from the process id, which keeps two flow runs at once apart, and the
//! bind test skips ports either of them already listens on.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// How many ports each workstream gets.
pub const PORT_COUNT: u16 = 10;
/// The first port handed out (above the well-known and most registered ones).
const FIRST: u16 = 20_000;
/// How many blocks fit between [`FIRST`] and 60 000.
const BLOCKS: u16 = 4_000;

/// The first ports of the blocks this process holds.
static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A block of ports held until dropped.
#[derive(Debug)]
pub struct PortBlock {
    first: u16,
}

impl PortBlock {
    /// Takes a free block, or `None` when none is free.
    pub fn take() -> Option<PortBlock> {
        let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let offset = (std::process::id() % u32::from(BLOCKS)) as u16;
        for step in 0..BLOCKS {
            let first = FIRST + ((offset + step) % BLOCKS) * PORT_COUNT;
            if taken.contains(&first) {
                continue;
            }
            if (first..first + PORT_COUNT).all(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()) {
                taken.insert(first);
                return Some(PortBlock { first });
            }
        }
        None
    }

    /// The first port of the block.
    pub fn first(&self) -> u16 {
        self.first
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_held_at_once_never_share_a_port_and_come_back_when_dropped() {
        let a = PortBlock::take().expect("a free block");
        let b = PortBlock::take().expect("another free block");
        assert!(a.first() + PORT_COUNT <= b.first() || b.first() + PORT_COUNT <= a.first());
        let first = a.first();
        drop(a);
        assert!(!TAKEN.lock().unwrap().contains(&first));
    }

    #[test]
    fn a_block_with_a_bound_port_is_skipped() {
        let a = PortBlock::take().expect("a free block");
        let next = a.first() + PORT_COUNT;
        drop(a);
        // Someone else listens in the block after it: it is never handed out while bound.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, next + 3));
        let blocks: Vec<PortBlock> = (0..3).filter_map(|_| PortBlock::take()).collect();
        if listener.is_ok() {
            assert!(
                blocks
                    .iter()
                    .all(|b| !(b.first()..b.first() + PORT_COUNT).contains(&(next + 3)))
            );
        }
    }
}
