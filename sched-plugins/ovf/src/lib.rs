//! The `ovf` scheduler plugin: weighted overflow. The algorithm is [`lvs_sched_algos::Ovf`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Ovf,
    name = "ovf",
    description = "weighted overflow"
);
