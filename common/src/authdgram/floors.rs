//! The receiver's memory of its peers: per peer, the highest generation accepted, in a state
//! file so that it survives the receiver's own restarts (a replay of a peer's earlier run
//! must stay refused after we restarted too).
//!
//! The file holds one line per peer, `peer <16 hex digits> generation <n>`, most recently
//! raised first. It is rewritten (atomically, fsynced) only when a peer's generation rises,
//! that is once per restart of a peer. At most [`MAX_PEERS`] peers are kept; past that the
//! one raised longest ago is forgotten (only senders holding the key create entries, so
//! this bound is reached only by a cluster that size or by many lost sender state files).

use std::path::{Path, PathBuf};

use super::statefile::{self, StateError, corrupt, parse_u64};

/// Peers remembered.
pub const MAX_PEERS: usize = 64;

const EXPECTED: &str = "peer <16 hex digits> generation <n>";

/// Highest generation accepted per peer.
#[derive(Debug, Default)]
pub struct PeerFloors {
    path: Option<PathBuf>,
    /// (peer, generation), most recently raised first.
    entries: Vec<(u64, u64)>,
}

impl PeerFloors {
    /// Floors kept in memory only (tests, tools).
    pub fn in_memory() -> PeerFloors {
        PeerFloors::default()
    }

    /// The floors stored at `path` (missing: none yet); later raises are written there.
    pub fn load(path: &Path) -> Result<PeerFloors, StateError> {
        let mut entries = Vec::new();
        if let Some(text) = statefile::read_optional(path)? {
            for (i, line) in text.lines().enumerate() {
                let w: Vec<&str> = line.split(' ').collect();
                let parsed = match w.as_slice() {
                    ["peer", id, "generation", g] if id.len() == 16 => {
                        u64::from_str_radix(id, 16).ok().zip(parse_u64(g))
                    }
                    _ => None,
                };
                let (peer, generation) =
                    parsed.ok_or_else(|| corrupt(path, i + 1, EXPECTED, line))?;
                if entries.len() < MAX_PEERS && !entries.iter().any(|&(p, _)| p == peer) {
                    entries.push((peer, generation));
                }
            }
        }
        Ok(PeerFloors {
            path: Some(path.to_path_buf()),
            entries,
        })
    }

    /// The file, if the floors are persisted.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The highest generation accepted from `peer`.
    pub fn get(&self, peer: u64) -> Option<u64> {
        self.entries
            .iter()
            .find(|&&(p, _)| p == peer)
            .map(|&(_, g)| g)
    }

    /// Records `generation` as `peer`'s floor (it is higher than the one before) and
    /// writes the file. The floor holds in memory even when the write fails.
    pub fn raise(&mut self, peer: u64, generation: u64) -> Result<(), StateError> {
        self.entries.retain(|&(p, _)| p != peer);
        self.entries.insert(0, (peer, generation));
        self.entries.truncate(MAX_PEERS);
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text: String = self
            .entries
            .iter()
            .map(|(p, g)| format!("peer {p:016x} generation {g}\n"))
            .collect();
        statefile::write_atomic(path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_survive_a_reload_and_are_bounded() {
        let d = std::env::temp_dir().join(format!("lvs-floors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("peers");
        let mut f = PeerFloors::load(&p).unwrap();
        assert_eq!(f.get(7), None);
        f.raise(7, 100).unwrap();
        f.raise(8, 5).unwrap();
        f.raise(7, 101).unwrap();
        let g = PeerFloors::load(&p).unwrap();
        assert_eq!((g.get(7), g.get(8)), (Some(101), Some(5)));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "peer 0000000000000007 generation 101\npeer 0000000000000008 generation 5\n"
        );
        let mut f = g;
        for peer in 100..100 + MAX_PEERS as u64 {
            f.raise(peer, 1).unwrap();
        }
        // Peer 8 was raised longest ago: forgotten first.
        let g = PeerFloors::load(&p).unwrap();
        assert_eq!(g.get(8), None);
        assert_eq!(g.get(100), Some(1));
        std::fs::write(&p, "peer 7 generation 1\n").unwrap();
        assert!(matches!(
            PeerFloors::load(&p),
            Err(StateError::Corrupt { line: 1, .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
