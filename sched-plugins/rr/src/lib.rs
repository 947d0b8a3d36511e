//! The `rr` scheduler plugin: round robin. The algorithm is [`lvs_sched_algos::Rr`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Rr,
    name = "rr",
    description = "round robin"
);
