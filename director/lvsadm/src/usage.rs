//! `-h` and `-v` text.

/// The IPVS version lvsadm speaks, as in ipvsadm's version line.
const IPVS: &str = lvs_proto::director::IPVS_VERSION;

/// `-v`.
pub fn version() -> String {
    format!(
        "lvsadm v{} (lvs-rs; ipvsadm v1.31 syntax, IPVS v{IPVS})\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h`.
pub fn usage(program: &str) -> String {
    let p = program;
    format!(
        "{version}Usage:
  {p} -A|E -t|u service-address [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
  {p} -D -t|u service-address
  {p} -C
  {p} -R
  {p} -S [-n]
  {p} -a|e -t|u service-address -r server-address [options]
  {p} -d -t|u service-address -r server-address
  {p} -L|l [options]
  {p} -Z [-t|u service-address]
  {p} --set tcp tcpfin udp
  {p} --start-daemon {{master|backup}} [daemon-options]
  {p} --stop-daemon {{master|backup}}
  {p} -h
  {p} --import keepalived|ldirectord FILE -o DIR
  {p} --add-pool --pool name [-s scheduler] [-b sched-flags] -r server-address [-w weight]
  {p} --add-pool-server --pool name -r server-address [-w weight]
  {p} --del-pool-server --pool name -r server-address
  {p} --del-pool --pool name
  {p} --add-rule -t service-address --rule name --pool name [match options] [--before rule]
  {p} --del-rule -t service-address --rule name
  {p} --list-rules [-t service-address]

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message
  --version         -v        display the version

Options:
  --tcp-service  -t service-address   service-address is host[:port]
  --udp-service  -u service-address   service-address is host[:port]
  --scheduler    -s scheduler         a scheduler plugin, e.g. rr|wrr|lc|wlc|sh|dh|mh|sed|nq,
                                      the default scheduler is wlc.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
                                      (lvs-rs encapsulates in ipip only)
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated): sh-fallback, sh-port,
                                      mh-fallback, mh-port, flag-1..3; key=value items are
                                      the plugin's options (table_size=4093, port=on)
  --rundir DIR                        the suite's run directory (default $LVS_RUNDIR,
                                      else /run/lvs); talks to DIR/director.sock

Daemon Options:
  --syncid sid                        syncid for connection sync (default=0)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync (default=eth0)
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
  Sync datagrams are always authenticated with the key of [sync] key_file in
  lvs-director's configuration file; without it --start-daemon is refused.

Content switching (layer 7), for content services of the director's configuration file:
  --add-pool                  add a pool of real servers (director-wide, like [[pool]]),
                              with its first server; the scheduler defaults to wrr
  --add-pool-server           add a real server to a pool
  --del-pool-server           remove a real server from a pool (not its last one)
  --del-pool                  delete a pool that no rule and no default_pool uses
  --add-rule                  add a rule to a content service (after its last rule, or
                              --before another); the first matching rule wins
  --del-rule                  delete a rule
  --list-rules                list content services, their rules and hits, and the pools
  --pool name                 the pool
  --rule name                 the rule (letters, digits, '-', '_', '.')
  --host host                 match: Host header or TLS server name, exact or *.domain
  --path-prefix /prefix       match: the path starts with this
  --path-regex regex          match: the regular expression is found in path and query
  --method METHOD             match: one of these methods (repeatable)
  --header name[:value]       match: the header is present (with this value) (repeatable)
  --before rule               insert the new rule before this one
Changes apply at once without dropping open client connections (their next request uses
the new rules). They are not written back: the configuration file is read again at the
next start or SIGHUP, and -S saves IP-load-balanced services only.

Host and port names come from /etc/hosts and /etc/services only (never DNS); IPv6 is
given as [addr]:port.
",
        version = version()
    )
}
