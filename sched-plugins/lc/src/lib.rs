//! The `lc` scheduler plugin: least connections. The algorithm is [`lvs_sched_algos::Lc`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Lc,
    name = "lc",
    description = "least connections"
);
