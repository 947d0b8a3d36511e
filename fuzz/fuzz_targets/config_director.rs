//! The director's configuration file (`lvs_director::config::parse`: TOML, the content services and pools, and every check; the files it names are not read).
//! Invariant: no panic; a refusal is one line that points inside the text
//! (`lvs_fuzz::check_error`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lvs_fuzz::{PATH, fuzz_loader};

fuzz_target!(|data: &[u8]| {
    let _ = fuzz_loader(data, |text| {
        lvs_director::config::parse(&lvs_common::Source::new(Path::new(PATH), text))
    });
});
