//! Durability of the single-node log: a write-ahead log of every command, and a snapshot.
//!
//! Files in the state directory:
//! - `lockmgr.wal`: `LVSWAL01`, then one record per command: CRC-32 (IEEE, big-endian) of
//!   the rest of the record, the entry's log index (u64, big-endian), the command as one frame
//!   ([`Command::to_bytes`]: length header and bincode body).
//! - `lockmgr.snap`: `LVSSNP01`, CRC-32 of the rest, the index of the last command it
//!   contains, the [`Snapshot`] as one frame. Replaced atomically (write a temporary file,
//!   fsync, rename, fsync the directory).
//!
//! Start-up restores the snapshot, then applies every WAL record whose index follows it. A
//! record cut short or failing its CRC ends the log: that is a write the crash interrupted,
//! whose outputs nobody saw (see [`Storage::sync`]), so the file is truncated there and the
//! event logged. After a snapshot the WAL is emptied; records it still holds because a crash
//! came between the two steps are recognised by their index and skipped.
//!
//! The rule that makes this safe: **the daemon syncs the log before any client sees an output
//! of the commands in it** (group commit: one `fdatasync` per turn of the event loop). So a
//! fencing token a client has seen was issued by a command that is on disk, replay issues it
//! again, and the next token after a restart is larger.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use log::Level;
use lvs_common::crc32::crc32_parts;
use lvs_common::event;
use lvs_lockcore::{Command, Snapshot, StateMachine};
use lvs_proto::FrameLimit;
use lvs_proto::frame::HEADER_LEN;

use crate::persist::Counters;

const WAL_MAGIC: &[u8; 8] = b"LVSWAL01";
const SNAP_MAGIC: &[u8; 8] = b"LVSSNP01";
const WAL_FILE: &str = "lockmgr.wal";
const SNAP_FILE: &str = "lockmgr.snap";

/// Why the stored state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, to which file.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A file is damaged in a way a crash cannot explain (the snapshot, or the WAL's header).
    #[error("{}: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StorageError {
    let what = what.into();
    move |source| StorageError::Io { what, source }
}

/// The state found on disk at start-up.
#[derive(Debug)]
pub struct Recovered {
    /// The state after the snapshot and every WAL record.
    pub state: StateMachine,
    /// The index of the last command applied (0: none ever).
    pub applied_index: u64,
    /// WAL records applied on top of the snapshot.
    pub replayed: u64,
}

/// The open WAL and the snapshot file.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    wal: BufWriter<File>,
    fsync: bool,
    /// Records written since the last sync.
    dirty: bool,
    /// Records in the WAL (since the last snapshot).
    wal_records: u64,
    /// Syncs so far (each is one batch, one write, one fsync).
    counters: Counters,
}

fn snapshot_limit() -> FrameLimit {
    FrameLimit::MAX
}

impl Storage {
    /// Opens (creating if needed) the state in `dir` and recovers it. `fsync: false` skips
    /// every fsync (tests and benchmarks only: a crash of the machine may then lose grants).
    pub fn open(dir: &Path, fsync: bool) -> Result<(Storage, Recovered), StorageError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(format!(
                "cannot create state directory {}",
                dir.display()
            )))?;
        let (mut state, snap_index) = read_snapshot(&dir.join(SNAP_FILE))?;
        let wal_path = dir.join(WAL_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&wal_path)
            .map_err(io_err(format!("cannot open {}", wal_path.display())))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_err(format!("cannot read {}", wal_path.display())))?;
        let mut applied_index = snap_index;
        let mut replayed = 0;
        let mut wal_records = 0;
        let good_len;
        if bytes.is_empty() {
            file.write_all(WAL_MAGIC)
                .map_err(io_err(format!("cannot write {}", wal_path.display())))?;
            good_len = WAL_MAGIC.len();
        } else if bytes.len() < WAL_MAGIC.len() && WAL_MAGIC.starts_with(&bytes) {
            // The header itself was being written when we crashed.
            good_len = 0;
        } else if !bytes.starts_with(WAL_MAGIC) {
            return Err(StorageError::Corrupt {
                path: wal_path,
                reason: "not an lvs-lockmgr write-ahead log (bad header)".to_owned(),
            });
        } else {
            let mut pos = WAL_MAGIC.len();
            loop {
                match parse_record(&bytes[pos..]) {
                    Ok(Some((index, cmd, len))) => {
                        wal_records += 1;
                        if index > applied_index {
                            if index != applied_index + 1 {
                                return Err(StorageError::Corrupt {
                                    path: wal_path,
                                    reason: format!(
                                        "log index {index} follows {applied_index}: entries are missing"
                                    ),
                                });
                            }
                            state.apply(&cmd);
                            applied_index = index;
                            replayed += 1;
                        }
                        pos += len;
                    }
                    Ok(None) => break,
                    Err(reason) => {
                        event!(
                            Level::Warn,
                            "lock_wal_truncated",
                            file = wal_path.display(),
                            offset = pos,
                            dropped_bytes = bytes.len() - pos,
                            reason = reason,
                        );
                        break;
                    }
                }
            }
            good_len = pos;
        }
        if good_len != bytes.len() {
            file.set_len(u64::try_from(good_len).unwrap_or(u64::MAX))
                .map_err(io_err(format!("cannot truncate {}", wal_path.display())))?;
            if good_len == 0 {
                file.write_all(WAL_MAGIC)
                    .map_err(io_err(format!("cannot write {}", wal_path.display())))?;
            }
        }
        file.sync_all()
            .map_err(io_err(format!("cannot sync {}", wal_path.display())))?;
        // Appends go to the end whatever the cursor says.
        let file = reopen_append(&wal_path)?;
        let storage = Storage {
            dir: dir.to_path_buf(),
            wal: BufWriter::with_capacity(64 * 1024, file),
            fsync,
            dirty: false,
            wal_records,
            counters: Counters::default(),
        };
        Ok((
            storage,
            Recovered {
                state,
                applied_index,
                replayed,
            },
        ))
    }

    /// Appends the command with log index `index` (buffered: durable after [`Storage::sync`]).
    pub fn append(&mut self, index: u64, cmd: &Command) -> io::Result<()> {
        let frame = cmd
            .to_bytes()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let index_bytes = index.to_be_bytes();
        let crc = crc32_parts(&[&index_bytes, &frame]);
        self.wal.write_all(&crc.to_be_bytes())?;
        self.wal.write_all(&index_bytes)?;
        self.wal.write_all(&frame)?;
        self.dirty = true;
        self.wal_records += 1;
        Ok(())
    }

    /// Whether records were appended since the last sync.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Records in the WAL since the last snapshot.
    pub fn wal_records(&self) -> u64 {
        self.wal_records
    }

    /// Writes out and (unless fsync is off) `fdatasync`s every appended record.
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.wal.flush()?;
        if self.fsync {
            self.wal.get_ref().sync_data()?;
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.submissions.fetch_add(1, Ordering::Relaxed);
        self.counters.rounds.fetch_add(1, Ordering::Relaxed);
        self.dirty = false;
        Ok(())
    }

    /// How many syncs so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Writes `state` (which contains every command up to `index`) as the new snapshot and
    /// empties the WAL.
    pub fn snapshot(&mut self, index: u64, state: &StateMachine) -> Result<(), StorageError> {
        self.sync()
            .map_err(io_err("cannot sync the write-ahead log"))?;
        let frame =
            state
                .snapshot()
                .to_bytes(snapshot_limit())
                .map_err(|e| StorageError::Corrupt {
                    path: self.dir.join(SNAP_FILE),
                    reason: format!("cannot encode the snapshot: {e}"),
                })?;
        let index_bytes = index.to_be_bytes();
        let crc = crc32_parts(&[&index_bytes, &frame]);
        let tmp = self.dir.join(format!("{SNAP_FILE}.tmp"));
        let path = self.dir.join(SNAP_FILE);
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(SNAP_MAGIC)?;
            f.write_all(&crc.to_be_bytes())?;
            f.write_all(&index_bytes)?;
            f.write_all(&frame)?;
            if self.fsync {
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)?;
            if self.fsync {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(io_err(format!("cannot write {}", path.display())))?;
        // The snapshot holds everything: the WAL starts again (stale records would be skipped
        // by index anyway if we crashed before this).
        let wal_path = self.dir.join(WAL_FILE);
        let empty = || -> io::Result<File> {
            let f = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&wal_path)?;
            (&f).write_all(WAL_MAGIC)?;
            if self.fsync {
                f.sync_all()?;
            }
            Ok(f)
        };
        empty().map_err(io_err(format!("cannot reset {}", wal_path.display())))?;
        self.wal = BufWriter::with_capacity(64 * 1024, reopen_append(&wal_path)?);
        self.wal_records = 0;
        Ok(())
    }
}

fn reopen_append(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err(format!("cannot open {}", path.display())))
}

/// One record at the start of `bytes`: `Ok(None)` at the clean end, `Err` for a torn or
/// damaged record.
fn parse_record(bytes: &[u8]) -> Result<Option<(u64, Command, usize)>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let Some((crc, rest)) = bytes.split_first_chunk::<4>() else {
        return Err("record cut short in its checksum".to_owned());
    };
    let Some((index, rest)) = rest.split_first_chunk::<8>() else {
        return Err("record cut short in its index".to_owned());
    };
    let Some((header, _)) = rest.split_first_chunk::<HEADER_LEN>() else {
        return Err("record cut short in its length".to_owned());
    };
    let body_len = usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX);
    let frame_len = HEADER_LEN.saturating_add(body_len);
    if rest.len() < frame_len {
        return Err(format!(
            "record cut short ({} of {frame_len} bytes)",
            rest.len()
        ));
    }
    let frame = &rest[..frame_len];
    if crc32_parts(&[index, frame]) != u32::from_be_bytes(*crc) {
        return Err("checksum mismatch".to_owned());
    }
    let cmd = Command::from_bytes(frame).map_err(|e| format!("undecodable command: {e}"))?;
    Ok(Some((u64::from_be_bytes(*index), cmd, 4 + 8 + frame_len)))
}

fn read_snapshot(path: &Path) -> Result<(StateMachine, u64), StorageError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((StateMachine::new(), 0)),
        Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
    };
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let rest = bytes
        .strip_prefix(SNAP_MAGIC)
        .ok_or_else(|| corrupt("not an lvs-lockmgr snapshot (bad header)".to_owned()))?;
    let (crc, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("too short".to_owned()))?;
    let (index, frame) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("too short".to_owned()))?;
    if crc32_parts(&[index, frame]) != u32::from_be_bytes(*crc) {
        return Err(corrupt(
            "checksum mismatch: the snapshot is damaged (it is written atomically, so this is not a crash)"
                .to_owned(),
        ));
    }
    let snap = Snapshot::from_bytes(frame, snapshot_limit()).map_err(|e| corrupt(e.to_string()))?;
    let state = StateMachine::restore(snap).map_err(|e| corrupt(e.to_string()))?;
    Ok((state, u64::from_be_bytes(*index)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_lockcore::{LockFlags, LockMode, LockRef, LockRequest, NodeId, Output, SessionId};

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-lockmgr-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn lock_cmd(handle: u64) -> Command {
        Command::Lock(LockRequest {
            lock: LockRef::new(1, handle),
            lockspace: "ls".into(),
            resource: b"r".to_vec(),
            mode: LockMode::EX,
            flags: LockFlags::NONE,
            timeout_ms: None,
            lvb: None,
        })
    }

    fn script() -> Vec<Command> {
        let mut v = vec![
            Command::CreateLockspace { name: "ls".into() },
            Command::OpenSession {
                session: SessionId(1),
                node: NodeId(1),
                lease_ms: 1000,
            },
        ];
        for h in 0..5 {
            v.push(lock_cmd(h));
            v.push(Command::Unlock {
                lock: LockRef::new(1, h),
                lvb: None,
            });
        }
        v
    }

    #[test]
    fn replay_snapshot_and_torn_tail() {
        let dir = tmpdir("replay");
        let mut reference = StateMachine::new();
        {
            let (mut st, rec) = Storage::open(&dir, true).unwrap();
            assert_eq!(rec.applied_index, 0);
            for (i, c) in script().iter().enumerate() {
                st.append(i as u64 + 1, c).unwrap();
                reference.apply(c);
            }
            st.sync().unwrap();
        }
        let (mut st, rec) = Storage::open(&dir, true).unwrap();
        assert_eq!(rec.state, reference);
        assert_eq!(rec.applied_index, 12);
        assert_eq!(rec.replayed, 12);
        // Snapshot, then more records, then a torn record.
        st.snapshot(12, &rec.state).unwrap();
        let mut state = rec.state;
        let c = lock_cmd(9);
        st.append(13, &c).unwrap();
        st.sync().unwrap();
        let outs = state.apply(&c);
        assert!(matches!(outs[0], Output::Granted { token: 6, .. }));
        drop(st);
        let wal = dir.join(WAL_FILE);
        let mut f = OpenOptions::new().append(true).open(&wal).unwrap();
        f.write_all(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
        drop(f);
        let (_st, rec) = Storage::open(&dir, true).unwrap();
        assert_eq!(rec.state, state);
        assert_eq!(rec.applied_index, 13);
        assert_eq!(rec.replayed, 1);
        assert_eq!(rec.state.next_token(), 7);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_snapshot_is_refused() {
        let dir = tmpdir("badsnap");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(SNAP_FILE), b"LVSSNP01garbage-garbage").unwrap();
        let err = Storage::open(&dir, false).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
