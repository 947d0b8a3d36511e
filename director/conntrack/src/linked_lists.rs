//! Intrusive doubly linked lists over `u32` node numbers, in one pre-allocated array.
//!
//! Nodes `0..nodes` are table entries; nodes `nodes..nodes + heads` are the list
//! heads (circular sentinels). With a sentinel every unlink is O(1) without knowing
//! which list the node is on, which is what lets the timer wheel cancel an entry
//! without remembering its slot.

/// "No node": an entry that is on no list.
pub(crate) const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

/// A set of lists sharing one link array.
#[derive(Debug)]
pub(crate) struct LinkedLists {
    links: Vec<Link>,
    nodes: u32,
}

impl LinkedLists {
    /// Room for `nodes` entries and `heads` lists, all empty.
    pub(crate) fn new(nodes: u32, heads: u32) -> LinkedLists {
        let total = nodes as usize + heads as usize;
        let mut links = vec![
            Link {
                prev: NIL,
                next: NIL
            };
            total
        ];
        for h in nodes..nodes + heads {
            links[h as usize] = Link { prev: h, next: h };
        }
        LinkedLists { links, nodes }
    }

    /// The node number of list head `head`.
    #[inline]
    pub(crate) fn head(&self, head: u32) -> u32 {
        self.nodes + head
    }

    /// Whether `node` is on some list.
    #[inline]
    pub(crate) fn is_linked(&self, node: u32) -> bool {
        self.links[node as usize].next != NIL
    }

    /// Append `node` (which must be on no list) at the tail of list `head`.
    #[inline]
    pub(crate) fn push_back(&mut self, head: u32, node: u32) {
        debug_assert!(!self.is_linked(node));
        let h = self.head(head);
        let tail = self.links[h as usize].prev;
        self.links[node as usize] = Link {
            prev: tail,
            next: h,
        };
        self.links[tail as usize].next = node;
        self.links[h as usize].prev = node;
    }

    /// Take `node` off whatever list it is on; nothing if it is on none.
    #[inline]
    pub(crate) fn unlink(&mut self, node: u32) {
        let Link { prev, next } = self.links[node as usize];
        if next == NIL {
            return;
        }
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
        self.links[node as usize] = Link {
            prev: NIL,
            next: NIL,
        };
    }

    /// The first node of list `head`, if any.
    #[inline]
    pub(crate) fn first(&self, head: u32) -> Option<u32> {
        let h = self.head(head);
        let next = self.links[h as usize].next;
        (next != h).then_some(next)
    }

    /// Move every node of list `from` to the tail of list `to`, in O(1).
    pub(crate) fn splice(&mut self, from: u32, to: u32) {
        let (f, t) = (self.head(from), self.head(to));
        let first = self.links[f as usize].next;
        if first == f {
            return;
        }
        let last = self.links[f as usize].prev;
        let tail = self.links[t as usize].prev;
        self.links[tail as usize].next = first;
        self.links[first as usize].prev = tail;
        self.links[last as usize].next = t;
        self.links[t as usize].prev = last;
        self.links[f as usize] = Link { prev: f, next: f };
    }

    /// Bytes held by the link array.
    pub(crate) fn bytes(&self) -> usize {
        self.links.capacity() * std::mem::size_of::<Link>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_unlink_anywhere() {
        let mut l = LinkedLists::new(8, 2);
        for n in [3, 1, 4] {
            l.push_back(0, n);
        }
        l.push_back(1, 5);
        assert_eq!(l.first(0), Some(3));
        l.unlink(3);
        assert_eq!(l.first(0), Some(1));
        l.unlink(4);
        l.unlink(4);
        assert_eq!(l.first(0), Some(1));
        l.unlink(1);
        assert_eq!(l.first(0), None);
        assert_eq!(l.first(1), Some(5));
        assert!(!l.is_linked(1));
        assert!(l.is_linked(5));
        l.push_back(0, 6);
        l.push_back(0, 7);
        l.splice(0, 1);
        assert_eq!(l.first(0), None);
        l.unlink(5);
        assert_eq!(l.first(1), Some(6));
        l.unlink(6);
        assert_eq!(l.first(1), Some(7));
        l.splice(0, 1);
        assert_eq!(l.first(1), Some(7));
    }
}
