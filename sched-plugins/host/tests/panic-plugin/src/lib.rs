//! A scheduler that panics on its first pick: the host must catch it, quarantine the plugin and
//! fall back to round robin, never abort.

use lvs_sched_abi::{Dest, Flow, Options, Scheduler, Service};

pub struct Panicky;

impl Scheduler for Panicky {
    fn create(_service: &Service, _options: &Options) -> Result<Self, String> {
        Ok(Panicky)
    }

    fn schedule(&mut self, _flow: &Flow, dests: &[Dest]) -> Option<usize> {
        panic!("panicky: deliberate panic with {} destinations", dests.len());
    }
}

lvs_sched_abi::export_scheduler!(Panicky, name = "panicky", description = "panics");
