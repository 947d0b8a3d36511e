//! The six VMS/DLM lock modes and their compatibility matrix.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};

/// A lock mode, from the weakest (NL) to the strongest (EX).
///
/// The numeric order (`NL < CR < CW < PR < PW < EX`) is the DLM's; it decides what counts as a
/// down-conversion (see [`LockMode::is_down_conversion`]) and which value-block operation a
/// conversion performs. It is *not* a lattice: CW and PR are mutually incompatible although
/// each is compatible with itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum LockMode {
    /// Null: no access; holds a place (and the value block) without blocking anyone.
    NL,
    /// Concurrent read: read, others may read and write.
    CR,
    /// Concurrent write: write, others may read and write (CR and CW).
    CW,
    /// Protected read: read, others may only read.
    PR,
    /// Protected write: write, others may only read concurrently (CR).
    PW,
    /// Exclusive: nobody else except NL.
    EX,
}

/// `COMPAT[a][b]`: may `a` and `b` be granted on one resource at once? The standard matrix.
const COMPAT: [[bool; 6]; 6] = [
    //  NL    CR     CW     PR     PW     EX
    [true, true, true, true, true, true],      // NL
    [true, true, true, true, true, false],     // CR
    [true, true, true, false, false, false],   // CW
    [true, true, false, true, false, false],   // PR
    [true, true, false, false, false, false],  // PW
    [true, false, false, false, false, false], // EX
];

impl LockMode {
    /// Every mode, weakest first.
    pub const ALL: [LockMode; 6] = [
        LockMode::NL,
        LockMode::CR,
        LockMode::CW,
        LockMode::PR,
        LockMode::PW,
        LockMode::EX,
    ];

    /// The mode's index in [`LockMode::ALL`] (0 for NL .. 5 for EX).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether `self` and `other` may be held on one resource at the same time.
    pub fn compatible(self, other: LockMode) -> bool {
        COMPAT[self.index()][other.index()]
    }

    /// Whether converting a lock granted in `self` to `to` is a down-conversion, which is
    /// always grantable at once: `to` is weaker than `self`, except PR to CW (the DLM's rule:
    /// CW conflicts with PR holders that PR itself does not).
    pub fn is_down_conversion(self, to: LockMode) -> bool {
        to <= self && !(self == LockMode::PR && to == LockMode::CW)
    }

    /// Whether a holder in this mode may write the value block (PW and EX).
    pub fn writes_value_block(self) -> bool {
        self >= LockMode::PW
    }

    /// The mode's two-letter name.
    pub fn name(self) -> &'static str {
        match self {
            LockMode::NL => "NL",
            LockMode::CR => "CR",
            LockMode::CW => "CW",
            LockMode::PR => "PR",
            LockMode::PW => "PW",
            LockMode::EX => "EX",
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mode name that is none of NL, CR, CW, PR, PW, EX.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lock mode {0:?}: expected one of NL, CR, CW, PR, PW, EX")]
pub struct UnknownMode(pub String);

impl FromStr for LockMode {
    type Err = UnknownMode;

    /// Parses a mode name, case-insensitively ("ex", "EX").
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LockMode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_symmetric_and_nl_is_universal() {
        for a in LockMode::ALL {
            assert!(a.compatible(LockMode::NL));
            for b in LockMode::ALL {
                assert_eq!(a.compatible(b), b.compatible(a), "{a} {b}");
            }
        }
    }

    #[test]
    fn down_conversions_never_add_conflicts() {
        // A down-conversion is granted without looking at the queues: it must conflict with
        // nothing the old mode did not already conflict with.
        for from in LockMode::ALL {
            for to in LockMode::ALL {
                if from.is_down_conversion(to) {
                    for other in LockMode::ALL {
                        assert!(
                            !from.compatible(other) || to.compatible(other),
                            "{from}->{to} vs {other}"
                        );
                    }
                }
            }
        }
        assert!(!LockMode::PR.is_down_conversion(LockMode::CW));
    }

    #[test]
    fn parse() {
        assert_eq!("ex".parse::<LockMode>().unwrap(), LockMode::EX);
        assert_eq!("Pw".parse::<LockMode>().unwrap(), LockMode::PW);
        assert!("XX".parse::<LockMode>().is_err());
    }
}
