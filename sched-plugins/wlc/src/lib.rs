//! The `wlc` scheduler plugin: weighted least connections. The algorithm is [`lvs_sched_algos::Wlc`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Wlc,
    name = "wlc",
    description = "weighted least connections"
);
