//! Length-prefixed framing: a 4-byte big-endian body length, then the body.
//!
//! This module knows bytes only; what is inside a body is [`crate::codec`]'s business. The
//! decoder checks the announced length against the limit before it allocates anything, so a
//! peer cannot make us reserve memory by lying in a header.

use crate::error::{ProtoError, Result};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// The largest frame body a side accepts (and, in [`crate::codec`], the most memory one decoded
/// message may claim).
///
/// Always a power of two between [`FrameLimit::MIN`] and [`FrameLimit::MAX`]: the codec needs a
/// compile-time byte limit per decode, and powers of two keep that set small while the limit
/// stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameLimit(usize);

impl FrameLimit {
    /// The smallest limit (256 bytes).
    pub const MIN: FrameLimit = FrameLimit(1 << 8);
    /// The largest limit (64 MiB).
    pub const MAX: FrameLimit = FrameLimit(1 << 26);
    /// The default limit (1 MiB).
    pub const DEFAULT: FrameLimit = FrameLimit(1 << 20);

    /// A limit of at least `bytes`: rounded up to a power of two and clamped to
    /// [`FrameLimit::MIN`]..=[`FrameLimit::MAX`].
    pub fn new(bytes: usize) -> FrameLimit {
        let rounded = bytes.checked_next_power_of_two().unwrap_or(Self::MAX.0);
        FrameLimit(rounded.clamp(Self::MIN.0, Self::MAX.0))
    }

    /// The limit in bytes.
    pub fn bytes(self) -> usize {
        self.0
    }
}

impl Default for FrameLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Writes the header for a body of `len` bytes into `header`.
///
/// # Panics
/// If `len` does not fit in 32 bits; callers check it against a [`FrameLimit`] first, which
/// always does.
pub fn write_header(header: &mut [u8; HEADER_LEN], len: usize) {
    let len = u32::try_from(len).expect("frame length checked against FrameLimit");
    *header = len.to_be_bytes();
}

/// Appends one frame with `body` to `out`.
pub fn encode_frame(body: &[u8], limit: FrameLimit, out: &mut Vec<u8>) -> Result<()> {
    if body.len() > limit.bytes() {
        return Err(ProtoError::Encode(format!(
            "message of {} bytes exceeds the maximum frame of {} bytes",
            body.len(),
            limit.bytes()
        )));
    }
    let mut header = [0; HEADER_LEN];
    write_header(&mut header, body.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    Ok(())
}

/// Incremental frame decoder, fed with whatever a (non-blocking) read returned.
///
/// ```
/// use lvs_proto::frame::{FrameDecoder, FrameLimit};
/// let mut dec = FrameDecoder::new(FrameLimit::DEFAULT);
/// let mut frames = Vec::new();
/// for chunk in [&[0u8, 0, 0][..], &[2, b'h'], &[b'i', 0, 0]] {
///     for body in dec.feed(chunk) {
///         frames.push(body.unwrap());
///     }
/// }
/// assert_eq!(frames, vec![b"hi".to_vec()]);
/// assert!(dec.is_mid_frame());
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    limit: FrameLimit,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// `Some` once the header is complete and accepted; its capacity is the body length.
    body: Option<Vec<u8>>,
    expected: usize,
    /// Set after an oversized header: the stream has lost its framing for good.
    poisoned: Option<u64>,
}

impl FrameDecoder {
    /// A decoder that refuses frames larger than `limit`.
    pub fn new(limit: FrameLimit) -> FrameDecoder {
        FrameDecoder {
            limit,
            header: [0; HEADER_LEN],
            header_len: 0,
            body: None,
            expected: 0,
            poisoned: None,
        }
    }

    /// The limit this decoder enforces.
    pub fn limit(&self) -> FrameLimit {
        self.limit
    }

    /// Consumes bytes from the front of `input` until one frame is complete (returned, with
    /// `input` pointing after it) or `input` is empty (`Ok(None)`; partial data is kept).
    ///
    /// After an error the stream cannot be resynchronised: every later call fails too.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(len) = self.poisoned {
            return Err(self.too_large(len));
        }
        if self.body.is_none() {
            let take = (HEADER_LEN - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
            self.header_len += take;
            *input = &input[take..];
            if self.header_len < HEADER_LEN {
                return Ok(None);
            }
            let len = u32::from_be_bytes(self.header);
            // u32 always fits in usize on the 32- and 64-bit targets we build for; the
            // conversion error path is only a guard.
            let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
            if len_usize > self.limit.bytes() {
                self.poisoned = Some(u64::from(len));
                return Err(self.too_large(u64::from(len)));
            }
            // The one allocation, made only after the length passed the check.
            self.body = Some(Vec::with_capacity(len_usize));
            self.expected = len_usize;
        }
        let body = self.body.as_mut().expect("header complete");
        let take = (self.expected - body.len()).min(input.len());
        body.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if body.len() < self.expected {
            return Ok(None);
        }
        self.header_len = 0;
        Ok(self.body.take())
    }

    /// Iterates over the frames completed by `input`. Stops after the first error.
    pub fn feed<'d, 'a>(&'d mut self, input: &'a [u8]) -> Frames<'d, 'a> {
        Frames {
            decoder: self,
            input,
            done: false,
        }
    }

    /// Whether part of a frame is buffered (so an end of stream now would cut a frame).
    pub fn is_mid_frame(&self) -> bool {
        self.header_len > 0
    }

    /// Call at end of stream: an error if it cut a frame in the middle.
    pub fn finish(&self) -> Result<()> {
        if !self.is_mid_frame() {
            return Ok(());
        }
        let (got, expected) = match &self.body {
            Some(body) => (HEADER_LEN + body.len(), HEADER_LEN + self.expected),
            None => (self.header_len, HEADER_LEN),
        };
        Err(ProtoError::Truncated { got, expected })
    }

    fn too_large(&self, len: u64) -> ProtoError {
        ProtoError::FrameTooLarge {
            len,
            max: self.limit.bytes(),
        }
    }
}

/// Iterator returned by [`FrameDecoder::feed`].
#[derive(Debug)]
pub struct Frames<'d, 'a> {
    decoder: &'d mut FrameDecoder,
    input: &'a [u8],
    done: bool,
}

impl Iterator for Frames<'_, '_> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.decoder.decode(&mut self.input) {
            Ok(Some(body)) => Some(Ok(body)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(body, FrameLimit::DEFAULT, &mut out).unwrap();
        out
    }

    #[test]
    fn limit_rounds_up_and_clamps() {
        assert_eq!(FrameLimit::new(1000).bytes(), 1024);
        assert_eq!(FrameLimit::new(1 << 20).bytes(), 1 << 20);
        assert_eq!(FrameLimit::new(0), FrameLimit::MIN);
        assert_eq!(FrameLimit::new(usize::MAX), FrameLimit::MAX);
        assert_eq!(FrameLimit::default().bytes(), 1 << 20);
    }

    #[test]
    fn decodes_byte_by_byte_and_in_one_go() {
        let mut stream = frame(b"one");
        stream.extend(frame(b""));
        stream.extend(frame(b"three"));
        let want = vec![b"one".to_vec(), Vec::new(), b"three".to_vec()];

        let mut dec = FrameDecoder::new(FrameLimit::DEFAULT);
        let all: Vec<_> = dec.feed(&stream).map(Result::unwrap).collect();
        assert_eq!(all, want);
        assert!(dec.finish().is_ok());

        let mut dec = FrameDecoder::new(FrameLimit::DEFAULT);
        let mut got = Vec::new();
        for b in &stream {
            got.extend(dec.feed(std::slice::from_ref(b)).map(Result::unwrap));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn oversized_header_fails_before_allocating_and_stays_failed() {
        let mut dec = FrameDecoder::new(FrameLimit::MIN);
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = dec.decode(&mut input).unwrap_err();
        assert!(matches!(
            err,
            ProtoError::FrameTooLarge {
                len: 0xffff_ffff,
                max: 256
            }
        ));
        assert!(dec.body.is_none());
        assert!(dec.decode(&mut &b"\0\0\0\0"[..]).is_err());
        assert_eq!(
            err.to_string(),
            "frame of 4294967295 bytes exceeds the maximum of 256 bytes"
        );
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let body = vec![7u8; 256];
        let mut dec = FrameDecoder::new(FrameLimit::MIN);
        let got: Vec<_> = dec.feed(&frame(&body)).map(Result::unwrap).collect();
        assert_eq!(got, vec![body]);
        assert!(encode_frame(&[0; 257], FrameLimit::MIN, &mut Vec::new()).is_err());
    }

    #[test]
    fn truncation_is_reported() {
        let mut dec = FrameDecoder::new(FrameLimit::DEFAULT);
        assert_eq!(dec.feed(&[0, 0]).count(), 0);
        assert!(matches!(
            dec.finish(),
            Err(ProtoError::Truncated {
                got: 2,
                expected: 4
            })
        ));

        let mut dec = FrameDecoder::new(FrameLimit::DEFAULT);
        assert_eq!(dec.feed(&[0, 0, 0, 10, 1, 2, 3]).count(), 0);
        let err = dec.finish().unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection closed in the middle of a frame (7 of 14 bytes received)"
        );
    }
}
