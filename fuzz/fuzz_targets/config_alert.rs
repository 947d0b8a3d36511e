//! lvs-alert's `[alert]` table on its own (the alerter's configuration: node, windows, mail,
//! notify command), with every check it has: `validate` and the mail addresses.
//! Invariant: no panic; a refusal is one line (`lvs_fuzz::check_error`, and `Problem`s too).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lvs_alert::AlertConfig;
use lvs_fuzz::{PATH, fuzz_loader};

fn one_line(p: &lvs_alert::Problem) {
    let shown = p.to_string();
    assert!(
        !shown.contains(['\n', '\r']),
        "a problem must be one line: {shown:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some(c) = fuzz_loader(data, |text| {
        lvs_common::parse_toml::<AlertConfig>(text, Path::new(PATH))
    }) else {
        return;
    };
    if let Err(problems) = c.validate() {
        problems.iter().for_each(one_line);
    }
    let _ = (
        c.dedup_window(),
        c.flap_window(),
        c.stable_after(),
        c.shutdown_timeout(),
    );
    if let Some(m) = &c.mail {
        if let Err(p) = m.from_mailbox() {
            one_line(&p);
        }
        if let Err(p) = m.to_mailboxes() {
            one_line(&p);
        }
        let _ = m.effective_starttls();
    }
});
