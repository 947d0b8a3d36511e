//! Chunked bodies (RFC 9112 §7.1): read strictly, forwarded re-encoded.
//!
//! A proxy that copies a chunked body's framing as it read it lets any leniency of its own
//! (a bare LF, junk after the size, a control character in an extension) reach the next hop,
//! which may read the same bytes as another boundary: a smuggled request. So the framing is
//! parsed by the grammar alone (CRLF only; `chunk-ext` as token or quoted-string parameters,
//! with no whitespace between the size and the first `;`;
//! at most [`MAX_SIZE_DIGITS`] size digits and [`MAX_LINE`] bytes of extensions; trailer lines
//! as field lines, at most [`MAX_TRAILERS`] bytes) and the data is written out again in chunks
//! of our own sizes, without extensions and without trailers, as HAProxy and nginx do.
//! Decoding writes straight into the destination buffer: nothing is allocated.

use thiserror::Error;

use crate::buf::Buf;

/// Most hex digits in a chunk size, leading zeros included (16 hold any `u64`).
pub(crate) const MAX_SIZE_DIGITS: u8 = 16;
/// Most bytes of chunk extensions on one chunk-size line.
pub(crate) const MAX_LINE: u16 = 1024;
/// Most bytes of the trailer section (dropped after validation).
pub(crate) const MAX_TRAILERS: u16 = 8192;
/// Room an output chunk's framing needs at most: 16 hex digits and two CRLFs.
const FRAME: usize = 20;
/// The end of every re-encoded body.
const LAST: &[u8] = b"0\r\n\r\n";

/// Why a chunked body was refused; the message names the rule broken, for the logs.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("bad chunked encoding: {0}")]
pub(crate) struct BadChunk(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// Whitespace after the size or an extension: only `;` may follow.
    BeforeSemi,
    /// After `;`: whitespace, then an extension name.
    NameStart,
    Name,
    /// Whitespace after a name: `=` or `;` must follow.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ValueStart,
    ValueToken,
    Quoted,
    QuotedPair,
    /// After a quoted string's closing quote.
    AfterQuoted,
    /// The LF of a chunk-size line.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
}

/// Decodes one chunked body and re-encodes it into another buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkedRecoder {
    state: State,
    /// The size being read, then what is left of the chunk's data.
    size: u64,
    digits: u8,
    /// Bytes of extensions on the current size line, or of the trailer section.
    line: u16,
    /// Write the data alone, without chunk framing (for an HTTP/1.0 client, whose body then
    /// ends with the connection).
    plain: bool,
}

impl Default for ChunkedRecoder {
    fn default() -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
            plain: false,
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.5 field-value bytes (VCHAR, obs-text, SP, HTAB).
pub(crate) fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `{n:x}` without allocating.
fn hex(mut n: u64, out: &mut [u8; 16]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            return &out[i..];
        }
    }
}

impl ChunkedRecoder {
    /// A decoder that writes the data alone.
    pub fn plain() -> Self {
        Self {
            plain: true,
            ..Self::default()
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn ext_byte(&mut self) -> Result<(), BadChunk> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(BadChunk("chunk extensions too long"));
        }
        Ok(())
    }

    fn trailer_byte(&mut self) -> Result<(), BadChunk> {
        self.line += 1;
        if self.line > MAX_TRAILERS {
            return Err(BadChunk("trailer section too long"));
        }
        Ok(())
    }

    /// Read the chunked body at the start of `input`, writing its data re-encoded into `out`
    /// as far as `out` has room. Returns how many bytes of `input` were used: all of them
    /// unless the body ends inside `input` ([`Self::is_done`]) or `out` is full.
    pub fn recode(&mut self, input: &[u8], out: &mut Buf) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            let bad = |why| Err(BadChunk(why));
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Data => {
                    let frame = if self.plain { 0 } else { FRAME };
                    let room = out.space();
                    if room <= frame {
                        return Ok(i);
                    }
                    let n = (input.len() - i)
                        .min(room - frame)
                        .min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    if self.plain {
                        out.push(&input[i..i + n]);
                    } else {
                        let mut digits = [0u8; 16];
                        out.push(hex(n as u64, &mut digits));
                        out.push(b"\r\n");
                        out.push(&input[i..i + n]);
                        out.push(b"\r\n");
                    }
                    i += n;
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return bad("chunk size has too many digits");
                        }
                        self.size = self.size << 4 | u64::from(d);
                        State::Size
                    }
                    None if self.digits == 0 => return bad("chunk size expected"),
                    None => match b {
                        b'\r' => State::SizeLf,
                        b';' => State::NameStart,
                        // RFC 9112 allows whitespace here (BWS); strict readers such as h11
                        // do not, so a size followed by a space is refused, not guessed at.
                        _ => return bad("junk after the chunk size"),
                    },
                },
                State::BeforeSemi => {
                    self.ext_byte()?;
                    match b {
                        b';' => State::NameStart,
                        b' ' | b'\t' => State::BeforeSemi,
                        _ => return bad("junk in a chunk extension"),
                    }
                }
                State::NameStart => {
                    self.ext_byte()?;
                    match b {
                        _ if is_ws(b) => State::NameStart,
                        _ if is_tchar(b) => State::Name,
                        _ => return bad("chunk extension name expected"),
                    }
                }
                State::Name => {
                    self.ext_byte()?;
                    match b {
                        _ if is_tchar(b) => State::Name,
                        b'\r' => State::SizeLf,
                        b'=' => State::ValueStart,
                        b';' => State::NameStart,
                        _ if is_ws(b) => State::AfterName,
                        _ => return bad("junk in a chunk extension"),
                    }
                }
                State::AfterName => {
                    self.ext_byte()?;
                    match b {
                        _ if is_ws(b) => State::AfterName,
                        b'=' => State::ValueStart,
                        b';' => State::NameStart,
                        _ => return bad("junk in a chunk extension"),
                    }
                }
                State::ValueStart => {
                    self.ext_byte()?;
                    match b {
                        _ if is_ws(b) => State::ValueStart,
                        b'"' => State::Quoted,
                        _ if is_tchar(b) => State::ValueToken,
                        _ => return bad("chunk extension value expected"),
                    }
                }
                State::ValueToken => {
                    self.ext_byte()?;
                    match b {
                        _ if is_tchar(b) => State::ValueToken,
                        b'\r' => State::SizeLf,
                        b';' => State::NameStart,
                        _ if is_ws(b) => State::BeforeSemi,
                        _ => return bad("junk in a chunk extension"),
                    }
                }
                State::Quoted => {
                    self.ext_byte()?;
                    match b {
                        b'"' => State::AfterQuoted,
                        b'\\' => State::QuotedPair,
                        // qdtext: HTAB, SP, VCHAR except `"` and `\`, obs-text.
                        _ if is_field_vchar(b) => State::Quoted,
                        _ => return bad("control character in a chunk extension"),
                    }
                }
                State::QuotedPair => {
                    self.ext_byte()?;
                    if is_field_vchar(b) {
                        State::Quoted
                    } else {
                        return bad("control character in a chunk extension");
                    }
                }
                State::AfterQuoted => {
                    self.ext_byte()?;
                    match b {
                        b'\r' => State::SizeLf,
                        b';' => State::NameStart,
                        _ if is_ws(b) => State::BeforeSemi,
                        _ => return bad("junk in a chunk extension"),
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return bad("chunk-size line must end with CRLF");
                    }
                    self.line = 0;
                    if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    }
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataCr => return bad("chunk data must end with CRLF"),
                State::DataLf if b == b'\n' => {
                    self.digits = 0;
                    State::Size
                }
                State::DataLf => return bad("chunk data must end with CRLF"),
                State::TrailerStart => {
                    self.trailer_byte()?;
                    match b {
                        b'\r' => State::FinalLf,
                        _ if is_tchar(b) => State::TrailerName,
                        _ => return bad("trailer field name expected"),
                    }
                }
                State::TrailerName => {
                    self.trailer_byte()?;
                    match b {
                        b':' => State::TrailerValue,
                        _ if is_tchar(b) => State::TrailerName,
                        _ => return bad("bad trailer field name"),
                    }
                }
                State::TrailerValue => {
                    self.trailer_byte()?;
                    match b {
                        b'\r' => State::TrailerLf,
                        _ if is_field_vchar(b) => State::TrailerValue,
                        _ => return bad("control character in a trailer field"),
                    }
                }
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::TrailerLf => return bad("trailer line must end with CRLF"),
                State::FinalLf if b != b'\n' => return bad("chunked body must end with CRLF"),
                State::FinalLf if self.plain => State::Done,
                State::FinalLf => {
                    // The end goes out only when it fits: the LF stays unread till then.
                    if out.space() < LAST.len() {
                        return Ok(i);
                    }
                    out.push(LAST);
                    State::Done
                }
            };
            i += 1;
        }
        Ok(i)
    }
}

/// The data of a chunked body we wrote (our own framing: `hex CRLF data CRLF`); for tests
/// and the fuzz targets, it panics on anything else.
pub(crate) fn data_of(mut b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").expect("size line");
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap(), 16).unwrap();
        if n == 0 {
            assert_eq!(&b[eol..], b"\r\n\r\n");
            return v;
        }
        v.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        assert_eq!(&b[eol + 2 + n..eol + 4 + n], b"\r\n");
        b = &b[eol + 4 + n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode all of `input` at once into a large buffer: (re-encoded output, bytes used).
    pub(crate) fn recode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), BadChunk> {
        let mut out = Buf::new(input.len() * 8 + 64);
        let mut r = ChunkedRecoder::default();
        let n = r.recode(input, &mut out)?;
        Ok((out.bytes().to_vec(), n, r.is_done()))
    }

    #[test]
    fn re_encodes_without_extensions_or_trailers() {
        let body = b"5;ext=1;q=\"a b\\\"\" ;r\r\nhello\r\n10; x\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (out, n, done) = recode_all(body).unwrap();
        assert!(done);
        assert_eq!(n, body.len() - 4);
        assert_eq!(out, b"5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n");
    }

    #[test]
    fn byte_by_byte_and_through_a_small_buffer() {
        let body = b"5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nNEXT";
        let mut r = ChunkedRecoder::default();
        let mut out = Buf::new(24);
        let mut got = Vec::new();
        let mut used = 0;
        while !r.is_done() {
            let end = (used + 1).min(body.len());
            let n = r.recode(&body[used..end], &mut out).unwrap();
            used += n;
            got.extend_from_slice(out.bytes());
            out.clear();
        }
        assert_eq!(used, body.len() - 4);
        assert_eq!(data_of(&got), b"helloabcdefghijklmnopqrstuvwxyz");
        assert!(got.ends_with(b"\r\n0\r\n\r\n"));
    }

    #[test]
    fn leniencies_are_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5 junk\r\nhello\r\n0\r\n\r\n",
            b"5;a\x01b\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\x7fy\"\r\nhello\r\n0\r\n\r\n",
            b"5\r\r\nhello\r\n0\r\n\r\n",
            b"5\rX\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5 ;a\r\nhello\r\n0\r\n\r\n",
            b";a\r\n",
            b"-5\r\n",
            b"+5\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"0\r\nX-T: 1\n\r\n",
            b"0\r\nX-T: 1\r\n\n",
            b"0\r\n\n",
            b"0\r\nX T: 1\r\n\r\n",
            b"0\r\n: 1\r\n\r\n",
            b"0\r\nX-T: a\x00b\r\n\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            b"5;=x\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a=b c\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(
                recode_all(bad).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(2000));
        assert!(recode_all(long.as_bytes()).is_err());
        let ok = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(1000));
        assert!(recode_all(ok.as_bytes()).unwrap().2);
        // Sixteen digits with leading zeros are fine.
        assert!(
            recode_all(b"0000000000000005\r\nhello\r\n0\r\n\r\n")
                .unwrap()
                .2
        );
    }

    #[test]
    fn a_full_output_buffer_stops_the_input() {
        let body = b"3\r\nabc\r\n0\r\n\r\n";
        let mut r = ChunkedRecoder::default();
        let mut out = Buf::new(FRAME);
        // No room for a data chunk: only the size line is read.
        assert_eq!(r.recode(body, &mut out), Ok(3));
        assert!(out.is_empty());
    }

    #[test]
    fn plain_writes_the_data_alone() {
        let body = b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX: 1\r\n\r\nNEXT";
        let mut r = ChunkedRecoder::plain();
        let mut out = Buf::new(64);
        assert_eq!(r.recode(body, &mut out), Ok(body.len() - 4));
        assert!(r.is_done());
        assert_eq!(out.bytes(), b"hello world");
        let mut r = ChunkedRecoder::plain();
        assert!(r.recode(b"5\nhello", &mut out).is_err());
    }

    #[test]
    fn hex_digits() {
        let mut d = [0u8; 16];
        assert_eq!(hex(0, &mut d), b"0");
        assert_eq!(hex(0x1a2b, &mut d), b"1a2b");
        assert_eq!(hex(u64::MAX, &mut d), b"ffffffffffffffff");
    }
}
