//! The layer-7 content configuration (`[[content_service]]`, `[[pool]]`) as lvs-l7 models and
//! checks it (`lvs_l7::config::validate_at`). Invariant: no panic; a refusal names a table
//! the file has.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lvs_fuzz::{PATH, fuzz_loader};
use lvs_l7::config::{Place, validate_at};
use lvs_l7::{ContentServiceConfig, PoolConfig};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    content_service: Vec<ContentServiceConfig>,
    #[serde(default)]
    pool: Vec<PoolConfig>,
}

fuzz_target!(|data: &[u8]| {
    let Some(f) = fuzz_loader(data, |text| {
        lvs_common::parse_toml::<File>(text, Path::new(PATH))
    }) else {
        return;
    };
    // The reason may span lines (a regex error shows the pattern with a caret): the
    // director's loader makes it one line (`Source::error_at`), as config_director checks.
    if let Err((place, _reason)) = validate_at(&f.content_service, &f.pool) {
        match place {
            Place::Service(i, _) => assert!(i < f.content_service.len()),
            Place::Rule(i, j, _) => assert!(j < f.content_service[i].rules.len()),
            Place::Pool(i, _) => assert!(i < f.pool.len()),
        }
    } else {
        for s in &f.content_service {
            let _ = lvs_l7::route::Settings::from_config(s);
        }
    }
});
