//! Byte encodings of commands, outputs and snapshots, through `lvs_proto::codec` (the one place
//! that talks to bincode).
//!
//! An encoding is one complete frame: the 4-byte length header, then the bincode body. So a
//! Raft entry, a snapshot file or a socket message holding it is self-delimiting and checked
//! against a [`FrameLimit`] before anything is allocated.

use bincode::{Decode, Encode};
use lvs_proto::frame::HEADER_LEN;
use lvs_proto::{FrameLimit, ProtoError};

use crate::types::{Command, Output};

/// The frame limit for one command or output: they are a few hundred bytes at most.
pub fn message_limit() -> FrameLimit {
    FrameLimit::new(4096)
}

/// Encodes `msg` as one frame.
pub fn encode<T: Encode>(msg: &T, limit: FrameLimit) -> Result<Vec<u8>, ProtoError> {
    lvs_proto::codec::to_frame(msg, limit)
}

/// Decodes one whole frame written by [`encode`]: the header must announce exactly the bytes
/// that follow it.
pub fn decode<T: Decode<()>>(frame: &[u8], limit: FrameLimit) -> Result<T, ProtoError> {
    let Some((header, body)) = frame.split_first_chunk::<HEADER_LEN>() else {
        return Err(ProtoError::Decode(format!(
            "{} bytes are too short for a frame",
            frame.len()
        )));
    };
    let announced = u32::from_be_bytes(*header);
    if usize::try_from(announced).ok() != Some(body.len()) {
        return Err(ProtoError::Decode(format!(
            "frame header announces {announced} bytes but {} follow",
            body.len()
        )));
    }
    if body.len() > limit.bytes() {
        return Err(ProtoError::FrameTooLarge {
            len: u64::from(announced),
            max: limit.bytes(),
        });
    }
    lvs_proto::codec::decode_body(body, limit)
}

impl Command {
    /// The command as one frame, e.g. a Raft entry's data.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ProtoError> {
        encode(self, message_limit())
    }

    /// Decodes a frame written by [`Command::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Command, ProtoError> {
        decode(bytes, message_limit())
    }
}

impl Output {
    /// The output as one frame.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ProtoError> {
        encode(self, message_limit())
    }

    /// Decodes a frame written by [`Output::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Output, ProtoError> {
        decode(bytes, message_limit())
    }
}
