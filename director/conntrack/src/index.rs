//! The hash index: chained buckets over two pre-allocated `u32` arrays.
//!
//! One node per entry (see [`crate::key`] for why one is enough for both
//! directions). Buckets are a power of two at least the table's capacity, so a
//! full table averages under one entry per bucket; a chain link costs 4 bytes per
//! entry and a bucket about 4 more.

use crate::linked_lists::NIL;

/// Buckets and chain links.
#[derive(Debug)]
pub(crate) struct Index {
    buckets: Vec<u32>,
    next: Vec<u32>,
    mask: u64,
}

impl Index {
    /// An index for `nodes` entries.
    pub(crate) fn new(nodes: u32) -> Index {
        let buckets = (nodes as usize).next_power_of_two().max(1);
        Index {
            buckets: vec![NIL; buckets],
            next: vec![NIL; nodes as usize],
            mask: u64::try_from(buckets - 1).unwrap_or(u64::MAX),
        }
    }

    #[inline]
    fn bucket(&self, hash: u64) -> usize {
        // The mask keeps the value below the bucket count, which is a usize.
        usize::try_from(hash & self.mask).unwrap_or(0)
    }

    /// Add `node` under `hash`.
    #[inline]
    pub(crate) fn insert(&mut self, node: u32, hash: u64) {
        let b = self.bucket(hash);
        self.next[node as usize] = self.buckets[b];
        self.buckets[b] = node;
    }

    /// Remove `node`, which was added under `hash`.
    #[inline]
    pub(crate) fn remove(&mut self, node: u32, hash: u64) {
        let b = self.bucket(hash);
        let mut cur = self.buckets[b];
        if cur == node {
            self.buckets[b] = self.next[node as usize];
        } else {
            while cur != NIL {
                let nxt = self.next[cur as usize];
                if nxt == node {
                    self.next[cur as usize] = self.next[node as usize];
                    break;
                }
                cur = nxt;
            }
            debug_assert_ne!(cur, NIL, "node {node} not in its bucket");
        }
        self.next[node as usize] = NIL;
    }

    /// The first node under `hash` for which `hit` says yes.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut hit: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut cur = self.buckets[self.bucket(hash)];
        while cur != NIL {
            if hit(cur) {
                return Some(cur);
            }
            cur = self.next[cur as usize];
        }
        None
    }

    /// Bytes held by the index.
    pub(crate) fn bytes(&self) -> usize {
        (self.buckets.capacity() + self.next.capacity()) * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_find_and_remove_anywhere() {
        let mut ix = Index::new(8);
        // Hashes 1 and 9 share bucket 1 of 8.
        for (node, hash) in [(0, 1), (1, 9), (2, 17), (3, 2)] {
            ix.insert(node, hash);
        }
        assert_eq!(ix.find(1, |n| n == 0), Some(0));
        assert_eq!(ix.find(9, |n| n == 2), Some(2));
        assert_eq!(ix.find(2, |n| n == 0), None);
        ix.remove(1, 9);
        assert_eq!(ix.find(1, |n| n == 1), None);
        assert_eq!(ix.find(1, |n| n == 0), Some(0));
        ix.remove(2, 17);
        ix.remove(0, 1);
        assert_eq!(ix.find(1, |_| true), None);
        assert_eq!(ix.find(2, |_| true), Some(3));
    }
}
