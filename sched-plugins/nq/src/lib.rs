//! The `nq` scheduler plugin: never queue. The algorithm is [`lvs_sched_algos::Nq`].

lvs_sched_abi::export_scheduler!(
    lvs_sched_algos::Nq,
    name = "nq",
    description = "never queue"
);
