//! Blocks of TCP ports for running workstreams: `FLOW_PORT` is the first, `FLOW_PORT_COUNT`
//! how many the block holds (the workstream's `ports`, 10 unless it says).
//!
//! Ports are handed out in cells of [`CELL`] from [`FIRST`] on; a block takes as many
//! consecutive cells as its count needs. A block is handed out only when none of its cells is
//! held by another block of this process and each of its ports can be bound on the loopback
//! address at that moment, so two dev servers of two workstreams never fight over a port. It
//! stays taken until its [`PortBlock`] is dropped (the end of the run). Other processes are
//! not asked: blocks start at a place derived from the process id, which keeps two flow runs
//! at once apart, and the bind test skips ports either of them already listens on.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// The ports of one cell: blocks are made of whole cells.
const CELL: u16 = 10;
/// The first port handed out (above the well-known and most registered ones).
const FIRST: u16 = 20_000;
/// How many cells fit between [`FIRST`] and 60 000.
const CELLS: u16 = 4_000;

/// The cells this process holds, by index.
static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A block of ports held until dropped.
#[derive(Debug)]
pub struct PortBlock {
    /// Its first cell.
    cell: u16,
    /// How many cells it holds.
    cells: u16,
    /// How many ports it holds.
    count: u16,
}

impl PortBlock {
    /// Takes a free block of `count` ports (at least one), or `None` when none is free.
    pub fn take(count: u16) -> Option<PortBlock> {
        let count = count.max(1);
        let cells = count.div_ceil(CELL);
        let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let offset = (std::process::id() % u32::from(CELLS)) as u16;
        for step in 0..CELLS {
            let cell = (offset + step) % CELLS;
            if cell + cells > CELLS || (cell..cell + cells).any(|c| taken.contains(&c)) {
                continue;
            }
            let first = FIRST + cell * CELL;
            if (first..first + count).all(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()) {
                taken.extend(cell..cell + cells);
                return Some(PortBlock { cell, cells, count });
            }
        }
        None
    }

    /// The first port of the block.
    pub fn first(&self) -> u16 {
        FIRST + self.cell * CELL
    }

    /// How many ports the block holds.
    pub fn count(&self) -> u16 {
        self.count
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for cell in self.cell..self.cell + self.cells {
            taken.remove(&cell);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ports of `block`.
    fn ports(block: &PortBlock) -> std::ops::Range<u16> {
        block.first()..block.first() + block.count()
    }

    #[test]
    fn blocks_held_at_once_never_share_a_port_and_come_back_when_dropped() {
        let a = PortBlock::take(10).expect("a free block");
        let b = PortBlock::take(25).expect("a larger free block");
        let c = PortBlock::take(1).expect("a block of one port");
        assert_eq!((a.count(), b.count(), c.count()), (10, 25, 1));
        for (x, y) in [(&a, &b), (&a, &c), (&b, &c)] {
            assert!(
                ports(x).all(|port| !ports(y).contains(&port)),
                "{x:?} and {y:?} overlap"
            );
        }
        let cells = b.cell..b.cell + b.cells;
        assert_eq!(cells.len(), 3, "25 ports take three cells");
        drop(b);
        let taken = TAKEN.lock().unwrap();
        assert!(cells.clone().all(|cell| !taken.contains(&cell)), "its cells come back");
    }

    #[test]
    fn a_block_with_a_bound_port_is_skipped() {
        let a = PortBlock::take(10).expect("a free block");
        let next = a.first() + 10;
        drop(a);
        // Someone else listens in the block after it: it is never handed out while bound.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, next + 3));
        let blocks: Vec<PortBlock> = (0..3).filter_map(|_| PortBlock::take(20)).collect();
        if listener.is_ok() {
            assert!(blocks.iter().all(|b| !ports(b).contains(&(next + 3))));
        }
    }
}
