//! The `wrr` scheduler plugin: weighted round robin, interleaved as IPVS. The algorithm is [`lvs_sched_algos::Wrr`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Wrr,
    name = "wrr",
    description = "weighted round robin, interleaved as IPVS"
);
