//! A fixed-capacity byte buffer: data between `start` and `end`, compacted when the tail runs
//! out. Its capacity bounds the memory of one direction of one connection.

use std::io::{self, Read, Write};

#[derive(Debug)]
pub(crate) struct Buf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buf {
    pub fn new(capacity: usize) -> Self {
        Self {
            data: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    pub fn space(&self) -> usize {
        self.data.len() - self.len()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Append as much of `b` as fits; returns how much.
    pub fn push(&mut self, b: &[u8]) -> usize {
        if self.data.len() - self.end < b.len() {
            self.compact();
        }
        let n = b.len().min(self.data.len() - self.end);
        self.data[self.end..self.end + n].copy_from_slice(&b[..n]);
        self.end += n;
        n
    }

    /// One read into the free space. `Ok(0)` is end of stream (only asked when there is room).
    /// The flag tells whether the read filled the space it was offered: a stream socket that
    /// gave less has nothing more for now, so the caller need not try again before the next
    /// readiness event.
    pub fn read_from(&mut self, r: &mut impl Read) -> io::Result<(usize, bool)> {
        if self.data.len() - self.end == 0 {
            self.compact();
        }
        let room = self.data.len() - self.end;
        let n = r.read(&mut self.data[self.end..])?;
        self.end += n;
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
}
