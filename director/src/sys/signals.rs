//! Signal dispositions across an upgrade's `execve`.

use nix::sys::signal::{SigHandler, Signal, signal};

/// The signals whose default action ends the process and that an administrator or a
/// supervisor may send while the new binary starts: a reload (SIGHUP), a dump (SIGUSR1), a
/// second upgrade (SIGUSR2).
const UNTIL_HANDLED: [Signal; 3] = [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2];

/// Right before the upgrade's `execve`: ignore those signals. A handler does not survive
/// `execve` (the disposition goes back to the default: terminate), an ignored disposition
/// does, so until the new binary installs its own handlers they are dropped instead of
/// killing the director.
pub fn ignore_until_handled() {
    for s in UNTIL_HANDLED {
        // SAFETY: SIG_IGN installs no handler code; nothing runs in signal context, and the
        // handlers being replaced are signal-hook's, whose self-pipes this process no longer
        // reads (it is about to execute the new binary).
        let _ = unsafe { signal(s, SigHandler::SigIgn) };
    }
}
