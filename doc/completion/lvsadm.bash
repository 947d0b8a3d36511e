# bash completion for lvsadm(8), the command line of lvs-director (ipvsadm's syntax).
# Installed as /usr/share/bash-completion/completions/lvsadm.

_lvsadm_services()
{
    # The configured services, as `lvsadm -S -n` prints them: "-A -t 192.0.2.10:80 -s wlc".
    local proto=$1
    lvsadm -S -n 2>/dev/null | awk -v p="$proto" '$1 == "-A" && $2 == p { print $3 }'
}

_lvsadm()
{
    local cur prev words cword
    _init_completion || return

    case $prev in
        -t | --tcp-service)
            COMPREPLY=($(compgen -W "$(_lvsadm_services -t)" -- "$cur"))
            return
            ;;
        -u | --udp-service)
            COMPREPLY=($(compgen -W "$(_lvsadm_services -u)" -- "$cur"))
            return
            ;;
        -f | --fwmark-service)
            COMPREPLY=($(compgen -W "$(_lvsadm_services -f)" -- "$cur"))
            return
            ;;
        -s | --scheduler)
            # The bundled plugins, and any other in the plugin directories.
            local plugins d f
            plugins="rr wrr lc wlc sh dh mh sed nq fo ovf twos"
            for d in ${LVS_PLUGIN_PATH//:/ } /usr/lib/lvs/sched; do
                for f in "$d"/liblvs_sched_*.so; do
                    [[ -e $f ]] || continue
                    f=${f##*/liblvs_sched_}
                    plugins+=" ${f%.so}"
                done
            done
            COMPREPLY=($(compgen -W "$plugins" -- "$cur"))
            return
            ;;
        --start-daemon | --stop-daemon)
            COMPREPLY=($(compgen -W "master backup" -- "$cur"))
            return
            ;;
        --import)
            COMPREPLY=($(compgen -W "keepalived ldirectord" -- "$cur"))
            return
            ;;
        --tun-type)
            COMPREPLY=($(compgen -W "ipip gue gre" -- "$cur"))
            return
            ;;
        -b | --sched-flags)
            COMPREPLY=($(compgen -W "sh-fallback sh-port mh-fallback mh-port flag-1 flag-2 flag-3" -- "$cur"))
            return
            ;;
        --mcast-interface)
            _available_interfaces
            return
            ;;
        --rundir | -o)
            _filedir -d
            return
            ;;
        keepalived | ldirectord)
            _filedir
            return
            ;;
        -p | --persistent | -M | --netmask | -r | --real-server | -w | --weight | \
            -x | --u-threshold | -y | --l-threshold | --tun-port | --syncid | \
            --sync-maxlen | --mcast-group | --mcast-port | --mcast-ttl | --pool | --rule | \
            --before | --host | --path-prefix | --path-regex | --method | --header)
            # A value of the user's own.
            return
            ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W '
            -A --add-service -E --edit-service -D --delete-service -C --clear
            -R --restore -S --save -a --add-server -e --edit-server -d --delete-server
            -L -l --list -Z --zero --set --start-daemon --stop-daemon -h --help
            -v --version --import
            --add-pool --add-pool-server --del-pool-server --del-pool --add-rule --del-rule
            --list-rules
            -t --tcp-service -u --udp-service -f --fwmark-service -6 --ipv6
            -s --scheduler -p --persistent -M --netmask -b --sched-flags
            -r --real-server -g --gatewaying -i --ipip -m --masquerading
            --tun-type --tun-port --tun-nocsum --tun-csum --tun-remcsum
            -w --weight -x --u-threshold -y --l-threshold
            -n --numeric -c --connection --timeout --daemon --stats --rate -X --exact
            --thresholds --persistent-conn --tun-info --nosort --sort
            --syncid --sync-maxlen --mcast-interface --mcast-group --mcast-port --mcast-ttl
            --pool --rule --host --path-prefix --path-regex --method --header --before
            --rundir' -- "$cur"))
    fi
} &&
    complete -F _lvsadm lvsadm
