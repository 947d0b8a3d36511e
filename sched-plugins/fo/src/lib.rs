//! The `fo` scheduler plugin: weighted failover. The algorithm is [`lvs_sched_algos::Fo`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Fo,
    name = "fo",
    description = "weighted failover"
);
