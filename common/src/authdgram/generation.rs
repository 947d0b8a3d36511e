//! The sender's boot generation: a number persisted in a state file and advanced at each
//! start, before the first datagram is sealed, so every datagram of this run carries a
//! generation higher than any earlier run's. Peers refuse datagrams of a generation older
//! than the highest they accepted ([`super::Freshness`]): a datagram captured during an
//! earlier run of this daemon can never be replayed.
//!
//! The file holds one line, `id <16 hex digits> generation <n>`. The id names this sender
//! (random on the first start, kept after); the director's sync uses it as its identity,
//! lvs-heartbeatd uses its configured node id instead. The next generation is
//! `max(stored + 1, seconds since the Unix epoch)`: strictly increasing while the file
//! is kept, and still above every earlier run when the file is lost or restored from an old
//! backup, as long as the clock is right.

use std::path::Path;

use super::statefile::{self, StateError, corrupt, parse_u64};

/// What a start of the daemon sends under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    /// This sender's identity (kept across restarts).
    pub id: u64,
    /// This run's generation.
    pub generation: u64,
}

const EXPECTED: &str = "id <16 hex digits> generation <n>";

impl Boot {
    /// Reads the file at `path` (missing: a first start with a random id), advances the
    /// generation, writes it back durably and only then returns it.
    pub fn advance(path: &Path) -> Result<Boot, StateError> {
        Boot::advance_at(path, unix_seconds())
    }

    /// [`Boot::advance`] with the clock given (tests).
    pub fn advance_at(path: &Path, now_secs: u64) -> Result<Boot, StateError> {
        let (id, stored) = match statefile::read_optional(path)? {
            Some(text) => parse(path, &text)?,
            None => (random_id(), 0),
        };
        let boot = Boot {
            id,
            generation: stored.saturating_add(1).max(now_secs),
        };
        statefile::write_atomic(
            path,
            &format!("id {:016x} generation {}\n", boot.id, boot.generation),
        )?;
        Ok(boot)
    }
}

fn parse(path: &Path, text: &str) -> Result<(u64, u64), StateError> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    let w: Vec<&str> = line.split(' ').collect();
    match w.as_slice() {
        ["id", id, "generation", g] if id.len() == 16 => {
            let id = u64::from_str_radix(id, 16).ok();
            match (id, parse_u64(g)) {
                // Id 0 is never written (see random_id): a zeroed file is corrupt.
                (Some(id), Some(g)) if id != 0 => Ok((id, g)),
                _ => Err(corrupt(path, 1, EXPECTED, text)),
            }
        }
        _ => Err(corrupt(path, 1, EXPECTED, text)),
    }
}

fn random_id() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (u64::from_ne_bytes(b) ^ u64::from(nanos)).max(1)
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-gen-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn strictly_increasing_and_durable() {
        let d = tmpdir("inc");
        let p = d.join("g");
        let a = Boot::advance_at(&p, 1000).unwrap();
        assert_eq!(a.generation, 1000);
        // Restarts within the same second, or with the clock set back: still higher.
        let b = Boot::advance_at(&p, 1000).unwrap();
        let c = Boot::advance_at(&p, 5).unwrap();
        assert_eq!((b.generation, c.generation), (1001, 1002));
        assert_eq!(a.id, c.id);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("id {:016x} generation 1002\n", a.id)
        );
        // A later clock wins over the stored count (a file restored from an old backup).
        assert_eq!(Boot::advance_at(&p, 9000).unwrap().generation, 9000);
        // Lost file: a new identity.
        std::fs::remove_file(&p).unwrap();
        assert_ne!(Boot::advance_at(&p, 9001).unwrap().id, a.id);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_file_is_refused() {
        let d = tmpdir("bad");
        let p = d.join("g");
        for bad in [
            "",
            "generation 5\n",
            "id 00000000000000001 generation 5\n",
            "id 0000000000000000 generation 5\n",
            "id 00000000000000zz generation 5\n",
            "id 0000000000000001 generation -5\n",
            "id 0000000000000001  generation 5\n",
        ] {
            std::fs::write(&p, bad).unwrap();
            let e = Boot::advance_at(&p, 1).unwrap_err();
            assert!(matches!(e, StateError::Corrupt { .. }), "{bad:?}: {e}");
            assert_eq!(std::fs::read_to_string(&p).unwrap(), bad, "left alone");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
