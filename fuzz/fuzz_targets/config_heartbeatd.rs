//! lvs-heartbeatd's configuration file.
//! Invariant: no panic; a refusal is one line that points inside the text
//! (`lvs_fuzz::check_error`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lvs_fuzz::{PATH, fuzz_loader};

fuzz_target!(|data: &[u8]| {
    let _ = fuzz_loader(data, |text| {
        lvs_heartbeatd::config::parse_str(text, Path::new(PATH))
    });
});
