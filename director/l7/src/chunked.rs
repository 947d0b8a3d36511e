//! Where a chunked body ends. The bytes are forwarded as they are (chunk sizes, extensions and
//! trailers included); this only follows the framing, so the next request or response on the
//! connection starts at the right byte.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("bad chunked encoding")]
pub(crate) struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `seen` tells if any digit came.
    Size {
        size: u64,
        seen: bool,
    },
    /// After the size: extension or CR, up to LF.
    SizeLine {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line, up to LF.
    TrailerLine,
    /// The final line's LF.
    FinalLf,
    Done,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkScanner {
    state: State,
}

impl Default for ChunkScanner {
    fn default() -> Self {
        Self {
            state: State::Size {
                size: 0,
                seen: false,
            },
        }
    }
}

impl ChunkScanner {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Follow `buf`; returns how many of its bytes belong to the body (all of them unless the
    /// body ends inside `buf`).
    pub fn scan(&mut self, buf: &[u8]) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Size { size, seen } => match (b as char).to_digit(16) {
                    Some(d) => {
                        if size > (u64::MAX >> 8) {
                            return Err(BadChunk);
                        }
                        State::Size {
                            size: size * 16 + u64::from(d),
                            seen: true,
                        }
                    }
                    None if seen && matches!(b, b';' | b'\r' | b' ' | b'\t') => {
                        State::SizeLine { size }
                    }
                    None if seen && b == b'\n' => Self::after_size(size),
                    None => return Err(BadChunk),
                },
                State::SizeLine { size } => {
                    if b == b'\n' {
                        Self::after_size(size)
                    } else {
                        State::SizeLine { size }
                    }
                }
                State::Data { left } => {
                    let n = (buf.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    continue;
                }
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    b'\n' => State::Size {
                        size: 0,
                        seen: false,
                    },
                    _ => return Err(BadChunk),
                },
                State::DataLf => match b {
                    b'\n' => State::Size {
                        size: 0,
                        seen: false,
                    },
                    _ => return Err(BadChunk),
                },
                State::TrailerStart => match b {
                    b'\r' => State::FinalLf,
                    b'\n' => State::Done,
                    _ => State::TrailerLine,
                },
                State::TrailerLine => {
                    if b == b'\n' {
                        State::TrailerStart
                    } else {
                        State::TrailerLine
                    }
                }
                State::FinalLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(BadChunk),
                },
            };
            i += 1;
        }
        Ok(i)
    }

    fn after_size(size: u64) -> State {
        if size == 0 {
            State::TrailerStart
        } else {
            State::Data { left: size }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_byte_by_byte_and_whole() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut s = ChunkScanner::default();
        assert_eq!(s.scan(body), Ok(body.len() - 4));
        assert!(s.is_done());
        let mut s = ChunkScanner::default();
        let mut total = 0;
        for b in body.iter() {
            let n = s.scan(std::slice::from_ref(b)).unwrap();
            total += n;
            if s.is_done() {
                break;
            }
        }
        assert_eq!(total, body.len() - 4);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(ChunkScanner::default().scan(b"zz\r\n"), Err(BadChunk));
        assert_eq!(ChunkScanner::default().scan(b"2\r\nabX"), Err(BadChunk));
    }
}
