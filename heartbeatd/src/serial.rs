//! The serial line: framing that resynchronises after line noise, and the tty set-up.
//!
//! A frame on the line is
//!
//! ```text
//! 0x00 | COBS( length (u16, big-endian) | payload | CRC-32 of length+payload (u32, big-endian) ) | 0x00
//! ```
//!
//! COBS (consistent overhead byte stuffing) removes every zero byte from the encoded part, so
//! a zero is always a frame boundary: whatever noise does to one frame, the decoder starts
//! afresh at the next zero. Each frame is both preceded and followed by a zero, so noise
//! between two frames, or inside one, costs at most the frames it touched. A chunk between
//! two zeros is accepted only if it decodes as COBS, its length field matches and its
//! CRC-32 (IEEE) matches; everything else is counted and dropped. Heartbeats are further
//! authenticated by their MAC ([`crate::wire`]).
//!
//! A heartbeat frame is 105 bytes on the line: at the default 19200 baud (8N1, 1920 bytes/s)
//! it takes about 55 ms, so the keepalive on a 19200-baud line should stay at or above
//! 100 ms.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use lvs_common::crc32::crc32;
use nix::sys::termios::{
    self, BaudRate, ControlFlags, FlushArg, InputFlags, SetArg, SpecialCharacterIndices,
};

/// The default baud rate.
pub const DEFAULT_BAUD: u32 = 19200;
/// The longest payload a frame carries.
pub const MAX_PAYLOAD: usize = 512;
/// Length field + CRC.
const OVERHEAD: usize = 2 + 4;
/// The longest COBS-encoded chunk of a valid frame (without the two zero delimiters).
pub const MAX_ENCODED: usize = cobs_max_len(MAX_PAYLOAD + OVERHEAD);

const fn cobs_max_len(n: usize) -> usize {
    n + n / 254 + 1
}

/// Why the serial line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// The device could not be opened.
    #[error("serial device {path}: {source}")]
    Open {
        /// The device.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The device is not a terminal.
    #[error("serial device {path}: not a tty")]
    NotATty {
        /// The device.
        path: PathBuf,
    },
    /// Reading or setting the terminal attributes failed.
    #[error("serial device {path}: termios: {source}")]
    Termios {
        /// The device.
        path: PathBuf,
        /// The error.
        source: nix::Error,
    },
    /// The configured baud rate is not one the kernel supports.
    #[error(
        "serial baud rate {0} not supported (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)"
    )]
    UnsupportedBaud(u32),
    /// A payload longer than [`MAX_PAYLOAD`].
    #[error("serial frame payload of {0} bytes, at most {MAX_PAYLOAD}")]
    TooLong(usize),
}

/// The `BaudRate` for a number, if the kernel has it.
pub fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        921600 => BaudRate::B921600,
        _ => return None,
    })
}

/// COBS-encodes `data`, appending to `out` (no zero byte is written).
fn cobs_encode(data: &[u8], out: &mut Vec<u8>) {
    let mut code_at = out.len();
    out.push(0);
    let mut code: u8 = 1;
    for &b in data {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
}

/// COBS-decodes one chunk (which holds no zero byte) into `out`; false if it is not valid COBS.
fn cobs_decode(enc: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut i = 0;
    while i < enc.len() {
        let code = enc[i];
        if code == 0 {
            return false;
        }
        i += 1;
        let n = usize::from(code - 1);
        let Some(block) = enc.get(i..i + n) else {
            return false;
        };
        if block.contains(&0) {
            return false;
        }
        out.extend_from_slice(block);
        i += n;
        if code != 0xFF && i < enc.len() {
            out.push(0);
        }
    }
    true
}

/// One frame as it goes on the line, delimiters included.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, SerialError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(SerialError::TooLong(payload.len()));
    }
    let mut content = Vec::with_capacity(payload.len() + OVERHEAD);
    // MAX_PAYLOAD fits a u16.
    content.extend_from_slice(
        &u16::try_from(payload.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    content.extend_from_slice(payload);
    let crc = crc32(&content);
    content.extend_from_slice(&crc.to_be_bytes());
    let mut out = Vec::with_capacity(cobs_max_len(content.len()) + 2);
    out.push(0);
    cobs_encode(&content, &mut out);
    out.push(0);
    Ok(out)
}

/// What the decoder saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeStats {
    /// Good frames delivered.
    pub frames: u64,
    /// Chunks that decoded but failed the CRC.
    pub crc_errors: u64,
    /// Chunks that were not valid COBS, or whose length field did not match.
    pub bad_frames: u64,
    /// Chunks longer than any valid frame (dropped up to the next zero).
    pub oversize: u64,
    /// Bytes dropped in all of the above.
    pub noise_bytes: u64,
}

/// Reassembles frames from a byte stream, skipping noise.
#[derive(Debug)]
pub struct FrameDecoder {
    chunk: Vec<u8>,
    scratch: Vec<u8>,
    discarding: bool,
    stats: DecodeStats,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> FrameDecoder {
        FrameDecoder {
            chunk: Vec::with_capacity(MAX_ENCODED),
            scratch: Vec::with_capacity(MAX_ENCODED),
            discarding: false,
            stats: DecodeStats::default(),
        }
    }

    /// What was seen so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Feeds received bytes; each good frame's payload is appended to `frames`.
    pub fn feed(&mut self, data: &[u8], frames: &mut Vec<Vec<u8>>) {
        for &b in data {
            if b == 0 {
                if self.discarding {
                    self.discarding = false;
                } else if !self.chunk.is_empty() {
                    self.finish_chunk(frames);
                }
                self.chunk.clear();
            } else if self.discarding {
                self.stats.noise_bytes += 1;
            } else if self.chunk.len() == MAX_ENCODED {
                self.stats.oversize += 1;
                self.stats.noise_bytes += self.chunk.len() as u64 + 1;
                self.chunk.clear();
                self.discarding = true;
            } else {
                self.chunk.push(b);
            }
        }
    }

    fn finish_chunk(&mut self, frames: &mut Vec<Vec<u8>>) {
        let noise = self.chunk.len() as u64;
        if !cobs_decode(&self.chunk, &mut self.scratch) || self.scratch.len() < OVERHEAD {
            self.stats.bad_frames += 1;
            self.stats.noise_bytes += noise;
            return;
        }
        let content = &self.scratch;
        let (body, crc) = content.split_at(content.len() - 4);
        let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        if len != body.len() - 2 {
            self.stats.bad_frames += 1;
            self.stats.noise_bytes += noise;
            return;
        }
        if crc32(body).to_be_bytes() != crc {
            self.stats.crc_errors += 1;
            self.stats.noise_bytes += noise;
            return;
        }
        self.stats.frames += 1;
        frames.push(body[2..].to_vec());
    }
}

/// Counters of the sending side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendStats {
    /// Frames handed to [`SerialPort::send_frame`].
    pub frames: u64,
    /// Frames abandoned unsent (or part-sent) because the line could not keep up.
    pub dropped: u64,
}

/// An open serial line, raw and non-blocking, ready for a `mio` loop (register
/// `SourceFd(&port.as_raw_fd())`; add WRITABLE interest while [`SerialPort::wants_write`]).
#[derive(Debug)]
pub struct SerialPort {
    file: File,
    path: PathBuf,
    decoder: FrameDecoder,
    pending: Vec<u8>,
    pending_off: usize,
    send: SendStats,
}

impl SerialPort {
    /// Opens `path` (`O_NOCTTY | O_NONBLOCK`, close-on-exec) and sets it raw: 8 data bits, no
    /// parity, one stop bit, no flow control (neither hardware nor XON/XOFF), receiver on,
    /// modem lines ignored, `baud` both ways; reads return at once (`VMIN` = `VTIME` = 0).
    /// Flushes whatever was queued before.
    pub fn open(path: &Path, baud: u32) -> Result<SerialPort, SerialError> {
        let speed = baud_rate(baud).ok_or(SerialError::UnsupportedBaud(baud))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| SerialError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let termios_err = |source| SerialError::Termios {
            path: path.to_path_buf(),
            source,
        };
        let mut t = match termios::tcgetattr(&file) {
            Ok(t) => t,
            Err(nix::Error::ENOTTY) => {
                return Err(SerialError::NotATty {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(termios_err(e)),
        };
        termios::cfmakeraw(&mut t);
        termios::cfsetspeed(&mut t, speed).map_err(termios_err)?;
        t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD | ControlFlags::CS8;
        t.control_flags &= !(ControlFlags::CRTSCTS | ControlFlags::CSTOPB | ControlFlags::PARENB);
        t.input_flags &= !(InputFlags::IXON | InputFlags::IXOFF | InputFlags::IXANY);
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(&file, SetArg::TCSANOW, &t).map_err(termios_err)?;
        termios::tcflush(&file, FlushArg::TCIOFLUSH).map_err(termios_err)?;
        Ok(SerialPort {
            file,
            path: path.to_path_buf(),
            decoder: FrameDecoder::new(),
            pending: Vec::new(),
            pending_off: 0,
            send: SendStats::default(),
        })
    }

    /// The device.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The receiving side's counters.
    pub fn decode_stats(&self) -> DecodeStats {
        self.decoder.stats()
    }

    /// The sending side's counters.
    pub fn send_stats(&self) -> SendStats {
        self.send
    }

    /// Reads everything available (until the read would block) and appends each good
    /// frame's payload to `frames`.
    pub fn read_frames(&mut self, frames: &mut Vec<Vec<u8>>) -> io::Result<()> {
        let mut buf = [0u8; 1024];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.decoder.feed(&buf[..n], frames),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues one frame and writes as much as the line takes now. A frame still unsent from
    /// before is abandoned first (a heartbeat is worth sending only while it is fresh; the
    /// receiver resynchronises on the new frame's leading zero) and counted as dropped.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), SerialSendError> {
        let frame = encode_frame(payload).map_err(|_| SerialSendError::TooLong(payload.len()))?;
        self.flush().map_err(SerialSendError::Io)?;
        if self.wants_write() {
            self.send.dropped += 1;
        }
        self.pending = frame;
        self.pending_off = 0;
        self.send.frames += 1;
        self.flush().map_err(SerialSendError::Io)
    }

    /// Writes what is pending, until done or the write would block.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.pending_off < self.pending.len() {
            match self.file.write(&self.pending[self.pending_off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pending_off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.pending_off = 0;
        Ok(())
    }

    /// A frame is part-written: ask the poll for WRITABLE and call [`SerialPort::flush`].
    pub fn wants_write(&self) -> bool {
        self.pending_off < self.pending.len()
    }

    /// The baud rate the tty is set to now (output side), as `termios` reports it.
    pub fn baud(&self) -> Result<BaudRate, SerialError> {
        let t = termios::tcgetattr(&self.file).map_err(|source| SerialError::Termios {
            path: self.path.clone(),
            source,
        })?;
        Ok(termios::cfgetospeed(&t))
    }
}

/// Why a frame could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SerialSendError {
    /// A payload longer than [`MAX_PAYLOAD`].
    #[error("serial frame payload of {0} bytes, at most {MAX_PAYLOAD}")]
    TooLong(usize),
    /// Writing failed.
    #[error("serial write: {0}")]
    Io(io::Error),
}

impl AsRawFd for SerialPort {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for SerialPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use nix::pty::openpty;
    use proptest::prelude::*;
    use std::os::fd::OwnedFd;
    use std::time::{Duration, Instant};

    #[test]
    fn cobs_round_trips_edge_cases() {
        let long: Vec<u8> = (0..600u32)
            .map(|i| u8::try_from(i % 255 + 1).unwrap())
            .collect();
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1],
            vec![1, 0, 2],
            (1..=254).collect(),
            (1..=255).collect(),
            long.clone(),
            long.iter()
                .map(|&b| if b % 7 == 0 { 0 } else { b })
                .collect(),
        ];
        for c in cases {
            let mut enc = Vec::new();
            cobs_encode(&c, &mut enc);
            assert!(!enc.contains(&0), "{c:?}");
            assert!(enc.len() <= cobs_max_len(c.len()));
            let mut dec = Vec::new();
            assert!(cobs_decode(&enc, &mut dec));
            assert_eq!(dec, c);
        }
    }

    #[test]
    fn frame_round_trip_and_limits() {
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        for p in [vec![], vec![0u8; 5], vec![0xAB; MAX_PAYLOAD]] {
            d.feed(&encode_frame(&p).unwrap(), &mut out);
            assert_eq!(out.pop(), Some(p));
        }
        assert!(matches!(
            encode_frame(&[1; MAX_PAYLOAD + 1]),
            Err(SerialError::TooLong(_))
        ));
        // A heartbeat frame is 105 bytes on the line.
        assert_eq!(
            encode_frame(&[7; crate::wire::MESSAGE_LEN]).unwrap().len(),
            105
        );
    }

    #[test]
    fn noise_between_and_inside_frames() {
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        let a = encode_frame(b"frame A").unwrap();
        let mut b = encode_frame(b"frame B").unwrap();
        b[5] ^= 0x40; // a flipped bit inside B
        let c = encode_frame(b"frame C").unwrap();
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\x13\x37garbage\x00\xff\x00");
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&[0xAA; 2000]); // longer than any frame
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&c);
        // Feed byte by byte: chunking must not matter.
        for byte in &stream {
            d.feed(std::slice::from_ref(byte), &mut out);
        }
        assert_eq!(out, vec![b"frame A".to_vec(), b"frame C".to_vec()]);
        let s = d.stats();
        assert_eq!(s.frames, 2);
        assert_eq!(s.oversize, 1);
        assert!(s.crc_errors + s.bad_frames >= 2, "{s:?}");
    }

    /// A pty pair: the slave opened through [`SerialPort::open`], the master non-blocking.
    fn pty(baud: u32) -> (File, SerialPort, OwnedFd) {
        let p = openpty(None, None).unwrap();
        let name = nix::unistd::ttyname(&p.slave).unwrap();
        let port = SerialPort::open(&name, baud).unwrap();
        let fl = fcntl(p.master.as_raw_fd(), FcntlArg::F_GETFL).unwrap();
        fcntl(
            p.master.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
        )
        .unwrap();
        (File::from(p.master), port, p.slave)
    }

    /// Writes `stream` into the master, then a sentinel frame, and collects frames on the
    /// port until the sentinel arrives.
    fn through_pty(master: &mut File, port: &mut SerialPort, stream: &[u8]) -> Vec<Vec<u8>> {
        let mut all = stream.to_vec();
        all.extend_from_slice(&encode_frame(b"--sentinel--").unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut off = 0;
        let mut frames = Vec::new();
        loop {
            if off < all.len() {
                match master.write(&all[off..(off + 512).min(all.len())]) {
                    Ok(n) => off += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            port.read_frames(&mut frames).unwrap();
            if frames.last().map(|f| f.as_slice()) == Some(b"--sentinel--") {
                frames.pop();
                return frames;
            }
            assert!(Instant::now() < deadline, "sentinel never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn pty_raw_mode_both_directions() {
        let (mut master, mut port, _slave) = pty(DEFAULT_BAUD);
        assert_eq!(port.baud().unwrap(), BaudRate::B19200);
        // Every byte value, zeros included, survives the line discipline.
        let all_bytes: Vec<u8> = (0..=255).collect();
        let mut stream = encode_frame(&all_bytes).unwrap();
        stream.extend_from_slice(&encode_frame(b"\r\n\x11\x13\x03\x04").unwrap());
        let got = through_pty(&mut master, &mut port, &stream);
        assert_eq!(
            got,
            vec![all_bytes.clone(), b"\r\n\x11\x13\x03\x04".to_vec()]
        );

        // Port -> master.
        port.send_frame(&all_bytes).unwrap();
        port.send_frame(b"second").unwrap();
        assert!(!port.wants_write());
        let mut d = FrameDecoder::new();
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while frames.len() < 2 {
            let mut buf = [0u8; 1024];
            match master.read(&mut buf) {
                Ok(n) => d.feed(&buf[..n], &mut frames),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
            assert!(Instant::now() < deadline);
        }
        assert_eq!(frames, vec![all_bytes, b"second".to_vec()]);
        assert_eq!(
            port.send_stats(),
            SendStats {
                frames: 2,
                dropped: 0
            }
        );
    }

    #[test]
    fn pty_garbage_is_skipped() {
        let (mut master, mut port, _slave) = pty(115200);
        assert_eq!(port.baud().unwrap(), BaudRate::B115200);
        let mut stream = encode_frame(b"one").unwrap();
        stream.extend_from_slice(b"\x00\x00line noise \xff\xfe\x00\x01\x02");
        let mut two = encode_frame(b"two, to be hit by noise").unwrap();
        two.splice(6..6, b"\x00zap\x00".iter().copied());
        stream.extend_from_slice(&two);
        stream.extend_from_slice(&encode_frame(b"three").unwrap());
        let got = through_pty(&mut master, &mut port, &stream);
        assert_eq!(got, vec![b"one".to_vec(), b"three".to_vec()]);
        assert!(port.decode_stats().noise_bytes > 0);
    }

    #[test]
    fn open_refuses_bad_baud_and_non_tty() {
        assert!(matches!(
            SerialPort::open(Path::new("/dev/null"), 12345),
            Err(SerialError::UnsupportedBaud(12345))
        ));
        assert!(matches!(
            SerialPort::open(Path::new("/dev/null"), DEFAULT_BAUD),
            Err(SerialError::NotATty { .. })
        ));
        assert!(matches!(
            SerialPort::open(Path::new("/nonexistent/tty"), DEFAULT_BAUD),
            Err(SerialError::Open { .. })
        ));
    }

    /// One frame, with optional noise before it (between frames) and inside it.
    #[derive(Debug, Clone)]
    struct Piece {
        payload: Vec<u8>,
        before: Vec<u8>,
        inside: Option<(usize, Vec<u8>)>,
    }

    fn pieces() -> impl Strategy<Value = Vec<Piece>> {
        let noise = || {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..40),
                proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 1..8),
                proptest::collection::vec(any::<u8>(), 600..700),
            ]
        };
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..120),
                prop_oneof![3 => Just(Vec::new()), 1 => noise()],
                prop_oneof![3 => Just(None), 1 => (any::<usize>(), noise()).prop_map(Some)],
            ),
            1..12,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (mut payload, before, inside))| {
                    // Unique payloads, so that matching received to sent is unambiguous.
                    payload.insert(0, u8::try_from(i).unwrap());
                    let inside = inside.filter(|(_, n)| !n.is_empty());
                    Piece {
                        payload,
                        before,
                        inside,
                    }
                })
                .collect()
        })
    }

    /// The stream, and for each frame whether noise touched it.
    fn build(pieces: &[Piece]) -> (Vec<u8>, Vec<bool>) {
        let mut stream = Vec::new();
        let mut touched = Vec::new();
        for p in pieces {
            stream.extend_from_slice(&p.before);
            let mut f = encode_frame(&p.payload).unwrap();
            if let Some((at, noise)) = &p.inside {
                // Strictly between the two delimiters.
                let at = 1 + at % (f.len() - 1);
                f.splice(at..at, noise.iter().copied());
            }
            touched.push(p.inside.is_some());
            stream.extend_from_slice(&f);
        }
        (stream, touched)
    }

    /// Received frames are sent frames, in order, and only touched frames are missing.
    fn check(pieces: &[Piece], touched: &[bool], got: &[Vec<u8>]) -> Result<(), TestCaseError> {
        let mut j = 0;
        for g in got {
            loop {
                prop_assert!(j < pieces.len(), "received a frame never sent: {:?}", g);
                if pieces[j].payload == *g {
                    j += 1;
                    break;
                }
                prop_assert!(touched[j], "untouched frame {} lost", j);
                j += 1;
            }
        }
        for (k, t) in touched.iter().enumerate().skip(j) {
            prop_assert!(*t, "untouched frame {} lost at the end", k);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn noise_never_yields_a_corrupt_frame(pieces in pieces(), chunk in 1usize..64) {
            let (stream, touched) = build(&pieces);
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                d.feed(c, &mut got);
            }
            // A final zero ends the last frame.
            d.feed(&[0], &mut got);
            check(&pieces, &touched, &got)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn noise_through_a_real_pty(pieces in pieces()) {
            let (mut master, mut port, _slave) = pty(DEFAULT_BAUD);
            let (stream, touched) = build(&pieces);
            let got = through_pty(&mut master, &mut port, &stream);
            check(&pieces, &touched, &got)?;
        }
    }
}
