//! The Raft log on disk: entries, hard state and the last snapshot, behind `raft::Storage`.
//!
//! Files in the state directory (Raft mode only; single-node mode uses [`crate::storage`]):
//! - `raft.log`: `LVSRFT01`, then records: CRC-32 of the rest, a kind byte (1: an entry,
//!   2: the hard state), the length (u32, big-endian), the protobuf message. Replay applies
//!   them in order: an entry at index `i` drops every entry from `i` on first (the leader
//!   overwrote a conflicting suffix), the last hard state wins. A record cut short or failing
//!   its CRC ends the log (a write the crash interrupted, never acknowledged: see below).
//! - `raft.snap`: `LVSRSN01`, CRC-32 of the rest, the `eraftpb::Snapshot` (metadata and the
//!   state machine's snapshot). Replaced atomically (temporary file, fsync, rename, fsync the
//!   directory); then `raft.log` is rewritten the same way with what follows the snapshot.
//!
//! The rule that makes a restart safe: new entries and the hard state of a ready are written
//! and fsynced before the daemon sends any of that ready's persisted messages (votes,
//! acknowledgements) and before raft hears they are persisted (which is when a leader counts
//! its own copy towards a commit, and when anything may be applied). So a vote given (the hard
//! state's `vote` and `term`) or an entry acknowledged to a leader is on disk first, and a node
//! that restarts can neither vote twice in a term nor lose an entry the leader counted towards
//! a commit. [`DiskLog::stage`] puts a ready in memory at once (raft reads it from there) and
//! returns its records; the writer thread ([`crate::persist`]) writes and fsyncs them, and the
//! replica reports them persisted only then (see [`crate::replica`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use lvs_common::crc32::{crc32, crc32_parts};
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError as RaftStorageError};

use crate::storage::StorageError;

const LOG_MAGIC: &[u8; 8] = b"LVSRFT01";
const SNAP_MAGIC: &[u8; 8] = b"LVSRSN01";
const LOG_FILE: &str = "raft.log";
const SNAP_FILE: &str = "raft.snap";
const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
/// Longest record accepted on replay (a batch entry is far smaller).
const MAX_RECORD: usize = 64 << 20;

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StorageError {
    let what = what.into();
    move |source| StorageError::Io { what, source }
}

/// The Raft log, hard state and snapshot: in memory for `raft`, on disk for restarts.
#[derive(Debug)]
pub struct DiskLog {
    dir: PathBuf,
    /// Shared with the writer thread ([`crate::persist`]), which appends to it.
    file: Arc<Mutex<File>>,
    fsync: bool,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// Entries after the snapshot's index, contiguous.
    entries: Vec<Entry>,
    /// Records appended since the log file was last rewritten.
    records: u64,
}

impl DiskLog {
    /// Opens (creating) the log in `dir`. A new log starts with `voters` as its configuration.
    pub fn open(dir: &Path, fsync: bool, voters: &[u64]) -> Result<DiskLog, StorageError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(format!(
                "cannot create state directory {}",
                dir.display()
            )))?;
        let snap_path = dir.join(SNAP_FILE);
        let mut snapshot = match fs::read(&snap_path) {
            Ok(bytes) => parse_snapshot(&snap_path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Snapshot::default(),
            Err(e) => {
                return Err(io_err(format!("cannot read {}", snap_path.display()))(e));
            }
        };
        let mut conf_state = snapshot.get_metadata().get_conf_state().clone();
        if conf_state.voters.is_empty() {
            conf_state.voters = voters.to_vec();
            snapshot.mut_metadata().set_conf_state(conf_state.clone());
        }
        let log_path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(io_err(format!("cannot open {}", log_path.display())))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_err(format!("cannot read {}", log_path.display())))?;
        if bytes.is_empty() {
            file.write_all(LOG_MAGIC)
                .map_err(io_err(format!("cannot write {}", log_path.display())))?;
            if fsync {
                file.sync_data()
                    .map_err(io_err(format!("cannot sync {}", log_path.display())))?;
            }
        }
        let mut log = DiskLog {
            dir: dir.to_owned(),
            file: Arc::new(Mutex::new(file)),
            fsync,
            hard_state: HardState::default(),
            conf_state,
            snapshot,
            entries: Vec::new(),
            records: 0,
        };
        if !bytes.is_empty() {
            let end = log.replay(&log_path, &bytes)?;
            if end < bytes.len() {
                let mut f = log.file.lock().unwrap_or_else(PoisonError::into_inner);
                f.set_len(end as u64)
                    .map_err(io_err(format!("cannot truncate {}", log_path.display())))?;
                // The next record goes where the valid part ends, not after a hole of zeros
                // (which replay would take for the end of the log, losing what follows).
                f.seek(SeekFrom::Start(end as u64))
                    .map_err(io_err(format!("cannot seek in {}", log_path.display())))?;
            }
        }
        let snap_index = log.snapshot.get_metadata().index;
        if log.hard_state.commit < snap_index {
            log.hard_state.commit = snap_index;
        }
        if log.hard_state.term < log.snapshot.get_metadata().term {
            log.hard_state.term = log.snapshot.get_metadata().term;
        }
        Ok(log)
    }

    /// Applies the records of `bytes`; returns where the valid part ends.
    fn replay(&mut self, path: &Path, bytes: &[u8]) -> Result<usize, StorageError> {
        if bytes.len() < LOG_MAGIC.len() || &bytes[..LOG_MAGIC.len()] != LOG_MAGIC {
            return Err(StorageError::Corrupt {
                path: path.to_owned(),
                reason: "not an lvs-lockmgr Raft log (bad magic)".to_owned(),
            });
        }
        let mut pos = LOG_MAGIC.len();
        while let Some((kind, body, next)) = record_at(bytes, pos) {
            match kind {
                KIND_ENTRY => match Entry::parse_from_bytes(body) {
                    Ok(e) => self.put_entry(e),
                    Err(_) => break,
                },
                KIND_HARD_STATE => match HardState::parse_from_bytes(body) {
                    Ok(hs) => self.hard_state = hs,
                    Err(_) => break,
                },
                _ => break,
            }
            self.records += 1;
            pos = next;
        }
        Ok(pos)
    }

    /// Puts `e` at its index in memory, dropping a conflicting suffix.
    fn put_entry(&mut self, e: Entry) {
        let snap_index = self.snapshot.get_metadata().index;
        if e.index <= snap_index {
            return;
        }
        let keep = usize::try_from(e.index - snap_index - 1).unwrap_or(usize::MAX);
        if keep > self.entries.len() {
            // A gap: cannot happen with records we wrote; ignore what cannot be placed.
            return;
        }
        self.entries.truncate(keep);
        self.entries.push(e);
    }

    /// The log file, for the writer thread.
    pub fn file(&self) -> Arc<Mutex<File>> {
        Arc::clone(&self.file)
    }

    /// Whether the log is fsynced (off only for tests and benchmarks).
    pub fn fsyncs(&self) -> bool {
        self.fsync
    }

    /// Takes `entries` and `hard_state` (either may be empty) into memory, where raft reads
    /// them, and returns their records for the writer thread to append (empty: nothing new).
    /// Raft must not hear they are persisted before those bytes are written and, if the ready
    /// asks for it (`must_sync`: entries, a snapshot, a new term or vote; not a hard state that
    /// only moves the commit index, which a restart may find lower: it is learnt again),
    /// fsynced.
    pub fn stage(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        for e in entries {
            push_record(
                &mut buf,
                KIND_ENTRY,
                &e.write_to_bytes().map_err(io::Error::other)?,
            );
        }
        if let Some(hs) = hard_state {
            push_record(
                &mut buf,
                KIND_HARD_STATE,
                &hs.write_to_bytes().map_err(io::Error::other)?,
            );
        }
        self.records += u64::try_from(entries.len()).unwrap_or(u64::MAX);
        for e in entries {
            self.put_entry(e.clone());
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(buf)
    }

    /// [`DiskLog::stage`], then writes and (if `sync`) fsyncs here, on the caller's thread.
    pub fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> io::Result<()> {
        let buf = self.stage(entries, hard_state)?;
        if buf.is_empty() {
            return Ok(());
        }
        let mut f = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        f.write_all(&buf)?;
        if sync && self.fsync {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Installs a snapshot received from the leader: replaces the log.
    pub fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), StorageError> {
        let meta = snap.get_metadata();
        let index = meta.index;
        self.conf_state = meta.get_conf_state().clone();
        if self.hard_state.term < meta.term {
            self.hard_state.term = meta.term;
        }
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        self.entries.clear();
        self.snapshot = snap;
        self.write_snapshot_and_log()
    }

    /// Log compaction: `data` is the state machine at `index` (applied): it becomes the
    /// snapshot, and the entries up to `index` go.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), StorageError> {
        let term = self.term_of(index).ok_or_else(|| StorageError::Corrupt {
            path: self.dir.join(LOG_FILE),
            reason: format!("no entry {index} to compact to"),
        })?;
        let first = self.snapshot.get_metadata().index + 1;
        let drop = usize::try_from(index + 1 - first).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        self.snapshot = snap;
        self.write_snapshot_and_log()
    }

    /// Entries written since the last rewrite (for the compaction policy).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The snapshot's index.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// The snapshot (the state machine's bytes are its data).
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    fn term_of(&self, index: u64) -> Option<u64> {
        let meta = self.snapshot.get_metadata();
        if index == meta.index {
            return Some(meta.term);
        }
        let first = meta.index + 1;
        if index < first {
            return None;
        }
        let i = usize::try_from(index - first).ok()?;
        self.entries.get(i).map(|e| e.term)
    }

    fn write_snapshot_and_log(&mut self) -> Result<(), StorageError> {
        let snap_bytes = self
            .snapshot
            .write_to_bytes()
            .map_err(|e| io_err("cannot encode the snapshot")(io::Error::other(e)))?;
        let mut body = Vec::with_capacity(SNAP_MAGIC.len() + 4 + snap_bytes.len());
        body.extend_from_slice(SNAP_MAGIC);
        body.extend_from_slice(&crc32(&snap_bytes).to_be_bytes());
        body.extend_from_slice(&snap_bytes);
        self.replace(SNAP_FILE, &body)?;

        let mut log = LOG_MAGIC.to_vec();
        for e in &self.entries {
            let b = e
                .write_to_bytes()
                .map_err(|e| io_err("cannot encode an entry")(io::Error::other(e)))?;
            push_record(&mut log, KIND_ENTRY, &b);
        }
        let hs = self
            .hard_state
            .write_to_bytes()
            .map_err(|e| io_err("cannot encode the hard state")(io::Error::other(e)))?;
        push_record(&mut log, KIND_HARD_STATE, &hs);
        self.replace(LOG_FILE, &log)?;
        let path = self.dir.join(LOG_FILE);
        // The writer thread is idle (the replica waits for it before a rewrite).
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(format!("cannot open {}", path.display())))?;
        self.records = u64::try_from(self.entries.len()).unwrap_or(u64::MAX);
        Ok(())
    }

    /// Atomically replaces `name` with `bytes`.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f =
            File::create(&tmp).map_err(io_err(format!("cannot create {}", tmp.display())))?;
        f.write_all(bytes)
            .map_err(io_err(format!("cannot write {}", tmp.display())))?;
        if self.fsync {
            f.sync_all()
                .map_err(io_err(format!("cannot sync {}", tmp.display())))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(format!("cannot rename {}", tmp.display())))?;
        if self.fsync {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(format!("cannot sync {}", self.dir.display())))?;
        }
        Ok(())
    }
}

fn push_record(buf: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes();
    let crc = crc32_parts(&[&[kind], &len, body]);
    buf.extend_from_slice(&crc.to_be_bytes());
    buf.push(kind);
    buf.extend_from_slice(&len);
    buf.extend_from_slice(body);
}

/// The record at `pos`: kind, body, where the next starts. None: the end, or a torn record.
fn record_at(bytes: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let head = bytes.get(pos..pos + 9)?;
    let crc = u32::from_be_bytes(head[..4].try_into().ok()?);
    let kind = head[4];
    let len_bytes: [u8; 4] = head[5..9].try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    if len > MAX_RECORD {
        return None;
    }
    let body = bytes.get(pos + 9..pos + 9 + len)?;
    (crc32_parts(&[&[kind], &len_bytes, body]) == crc).then_some((kind, body, pos + 9 + len))
}

fn parse_snapshot(path: &Path, bytes: &[u8]) -> Result<Snapshot, StorageError> {
    let corrupt = |reason: &str| StorageError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if bytes.len() < 12 || &bytes[..8] != SNAP_MAGIC {
        return Err(corrupt("not an lvs-lockmgr Raft snapshot (bad magic)"));
    }
    let crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let body = &bytes[12..];
    if crc32(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Snapshot::parse_from_bytes(body).map_err(|e| corrupt(&format!("undecodable: {e}")))
}

impl raft::Storage for DiskLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.snapshot.get_metadata().index + 1;
        if low < first {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        let last = self.snapshot.get_metadata().index
            + u64::try_from(self.entries.len()).unwrap_or(u64::MAX);
        if high > last + 1 {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        let lo = usize::try_from(low - first).unwrap_or(usize::MAX);
        let hi = usize::try_from(high - first).unwrap_or(usize::MAX);
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let meta = self.snapshot.get_metadata();
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < meta.index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        self.term_of(idx)
            .ok_or(raft::Error::Store(RaftStorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot.get_metadata().index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot.get_metadata().index
            + u64::try_from(self.entries.len()).unwrap_or(u64::MAX))
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index >= request_index && !self.snapshot.data.is_empty() {
            Ok(self.snapshot.clone())
        } else {
            Err(raft::Error::Store(
                RaftStorageError::SnapshotTemporarilyUnavailable,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![u8::try_from(index % 256).unwrap()].into(),
            ..Default::default()
        }
    }

    #[test]
    fn survives_reopen_overwrite_and_compaction() {
        let dir = std::env::temp_dir().join(format!("lvs-raftlog-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        {
            let mut log = DiskLog::open(&dir, true, &[1, 2, 3]).unwrap();
            let hs = HardState {
                term: 2,
                vote: 3,
                ..Default::default()
            };
            log.persist(&[entry(1, 1), entry(2, 1), entry(3, 1)], Some(&hs), true)
                .unwrap();
            // The leader of term 2 overwrites index 3.
            log.persist(&[entry(3, 2), entry(4, 2)], None, true)
                .unwrap();
        }
        let mut log = DiskLog::open(&dir, true, &[1, 2, 3]).unwrap();
        assert_eq!(log.initial_state().unwrap().hard_state.vote, 3);
        assert_eq!(log.last_index().unwrap(), 4);
        assert_eq!(log.term(3).unwrap(), 2);
        assert_eq!(
            log.initial_state().unwrap().conf_state.voters,
            vec![1, 2, 3]
        );
        log.compact(2, b"state".to_vec()).unwrap();
        assert_eq!(log.first_index().unwrap(), 3);
        drop(log);
        // A torn record at the end is dropped, the rest kept.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(LOG_FILE))
            .unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        drop(f);
        let mut log = DiskLog::open(&dir, true, &[1, 2, 3]).unwrap();
        assert_eq!(
            (log.first_index().unwrap(), log.last_index().unwrap()),
            (3, 4)
        );
        // What is written after the torn tail was cut is read back.
        log.persist(&[entry(5, 2)], None, true).unwrap();
        drop(log);
        let log = DiskLog::open(&dir, true, &[1, 2, 3]).unwrap();
        assert_eq!(log.last_index().unwrap(), 5);
        assert_eq!(log.term(2).unwrap(), 1);
        assert_eq!(&log.snapshot(2, 0).unwrap().data[..], b"state");
        assert_eq!(log.initial_state().unwrap().hard_state.term, 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
