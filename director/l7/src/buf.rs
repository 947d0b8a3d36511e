//! A bounded byte buffer: data between `start` and `end`, compacted when the tail runs out.
//! Its capacity bounds the memory of one direction of one connection.
//!
//! The storage is taken only while the buffer holds data and given back as soon as it is
//! empty, so an idle keep-alive connection holds none. Storage of the usual size ([`POOLED`])
//! comes from a free list of the worker thread (each worker is one thread, so the list needs
//! no lock), which keeps the allocator out of the way of a busy worker.

use std::cell::RefCell;
use std::io::{self, Read, Write};

/// The usual capacity of a buffer, and the size the free list keeps.
pub(crate) const POOLED: usize = 32 * 1024;
/// Free buffers a worker keeps for reuse (2 MiB); more go back to the allocator.
const MAX_FREE: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn take_storage(capacity: usize) -> Box<[u8]> {
    if capacity == POOLED
        && let Ok(Some(b)) = FREE.try_with(|f| f.borrow_mut().pop())
    {
        return b;
    }
    vec![0; capacity].into_boxed_slice()
}

fn give_back(b: Box<[u8]>) {
    if b.len() != POOLED {
        return;
    }
    // At thread exit the list may be gone already; the buffer is then simply freed.
    let _ = FREE.try_with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < MAX_FREE {
            f.push(b);
        }
    });
}

#[derive(Debug)]
pub(crate) struct Buf {
    data: Option<Box<[u8]>>,
    capacity: usize,
    start: usize,
    end: usize,
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(b) = self.data.take() {
            give_back(b);
        }
    }
}

impl Buf {
    /// A buffer of `capacity` bytes; nothing is allocated until data comes.
    pub fn new(capacity: usize) -> Self {
        Self {
            data: None,
            capacity,
            start: 0,
            end: 0,
        }
    }

    /// Whether storage is held (for tests).
    #[cfg(test)]
    fn holds_storage(&self) -> bool {
        self.data.is_some()
    }

    fn storage(&mut self) -> &mut [u8] {
        let capacity = self.capacity;
        self.data.get_or_insert_with(|| take_storage(capacity))
    }

    /// Empty: the storage goes back to the free list.
    fn release(&mut self) {
        self.start = 0;
        self.end = 0;
        if let Some(b) = self.data.take() {
            give_back(b);
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn space(&self) -> usize {
        self.capacity - self.len()
    }

    pub fn bytes(&self) -> &[u8] {
        self.data
            .as_deref()
            .map_or(&[], |d| &d[self.start..self.end])
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.release();
        }
    }

    pub fn clear(&mut self) {
        self.release();
    }

    fn compact(&mut self) {
        if self.start > 0 {
            let (start, end) = (self.start, self.end);
            self.storage().copy_within(start..end, 0);
            self.end -= start;
            self.start = 0;
        }
    }

    /// Append as much of `b` as fits; returns how much.
    pub fn push(&mut self, b: &[u8]) -> usize {
        if b.is_empty() {
            return 0;
        }
        if self.capacity - self.end < b.len() {
            self.compact();
        }
        let n = b.len().min(self.capacity - self.end);
        let end = self.end;
        self.storage()[end..end + n].copy_from_slice(&b[..n]);
        self.end += n;
        n
    }

    /// Move the first `n` bytes of `from` (at most what it holds and this buffer has room for)
    /// to the end of this buffer; returns how many. When this buffer is empty and takes all of
    /// `from`, the storage changes hands instead of the bytes (a body passing through untouched
    /// is then not copied between the two buffers).
    pub fn move_from(&mut self, from: &mut Buf, n: usize) -> usize {
        let n = n.min(from.len()).min(self.space());
        if n == 0 {
            return 0;
        }
        if self.is_empty() && n == from.len() && self.capacity == from.capacity {
            // Both empty storages go back the same way: nothing is held that holds no data.
            std::mem::swap(&mut self.data, &mut from.data);
            (self.start, self.end) = (from.start, from.end);
            from.release();
            return n;
        }
        let pushed = self.push(&from.bytes()[..n]);
        from.consume(pushed);
        pushed
    }

    /// One read into the free space. `Ok(0)` is end of stream (only asked when there is room).
    /// The flag tells whether the read filled the space it was offered: a stream socket that
    /// gave less has nothing more for now, so the caller need not try again before the next
    /// readiness event.
    pub fn read_from(&mut self, r: &mut impl Read) -> io::Result<(usize, bool)> {
        if self.capacity - self.end == 0 {
            self.compact();
        }
        let room = self.capacity - self.end;
        let end = self.end;
        let got = r.read(&mut self.storage()[end..]);
        let n = match got {
            Ok(n) => n,
            Err(e) => {
                if self.is_empty() {
                    self.release();
                }
                return Err(e);
            }
        };
        self.end += n;
        if self.is_empty() {
            self.release();
        }
        Ok((n, n == room))
    }

    /// One write of the buffered bytes.
    pub fn write_to(&mut self, w: &mut impl Write) -> io::Result<usize> {
        let n = w.write(self.bytes())?;
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_compacts_and_bounds() {
        let mut b = Buf::new(8);
        assert_eq!(b.push(b"abcdef"), 6);
        b.consume(4);
        assert_eq!(b.push(b"ghijklmn"), 6);
        assert_eq!(b.bytes(), b"efghijkl");
        assert_eq!(b.space(), 0);
    }

    #[test]
    fn storage_is_held_only_while_there_is_data() {
        let mut b = Buf::new(POOLED);
        assert!(!b.holds_storage());
        assert_eq!(b.bytes(), b"");
        assert_eq!(b.space(), POOLED);
        let mut empty: &[u8] = b"";
        assert_eq!(b.read_from(&mut empty).unwrap().0, 0);
        assert!(!b.holds_storage(), "an empty read takes nothing");
        b.push(b"abc");
        assert!(b.holds_storage());
        b.consume(2);
        assert!(b.holds_storage());
        b.consume(1);
        assert!(!b.holds_storage(), "empty again: given back");
        let mut src: &[u8] = b"xyz";
        assert_eq!(b.read_from(&mut src).unwrap().0, 3);
        assert_eq!(b.bytes(), b"xyz");
        b.clear();
        assert!(!b.holds_storage());
    }

    #[test]
    fn moving_everything_to_an_empty_buffer_hands_the_storage_over() {
        let mut a = Buf::new(16);
        let mut b = Buf::new(16);
        a.push(b"xxhello");
        a.consume(2);
        let p = a.bytes().as_ptr();
        assert_eq!(b.move_from(&mut a, 100), 5);
        assert_eq!(b.bytes(), b"hello");
        assert_eq!(b.bytes().as_ptr(), p, "not copied");
        assert!(a.is_empty() && !a.holds_storage());
        // A part, or into a buffer that holds data: copied.
        a.push(b"abcdef");
        assert_eq!(b.move_from(&mut a, 2), 2);
        assert_eq!(b.bytes(), b"helloab");
        assert_eq!(a.bytes(), b"cdef");
        let mut c = Buf::new(16);
        assert_eq!(c.move_from(&mut a, 3), 3);
        assert_eq!((c.bytes(), a.bytes()), (&b"cde"[..], &b"f"[..]));
        // Bounded by the room there is.
        let mut d = Buf::new(4);
        d.push(b"123");
        assert_eq!(d.move_from(&mut b, 100), 1);
        assert_eq!(d.bytes(), b"123h");
        assert_eq!(b.bytes(), b"elloab");
    }

    #[test]
    fn the_free_list_reuses_storage() {
        let mut a = Buf::new(POOLED);
        a.push(b"x");
        let p = a.bytes().as_ptr();
        a.clear();
        let mut b = Buf::new(POOLED);
        b.push(b"y");
        assert_eq!(b.bytes().as_ptr(), p, "the same storage came back");
    }
}
