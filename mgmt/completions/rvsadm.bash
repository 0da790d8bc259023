# bash completion for rvsadm (ipvsadm flags and rvs's readable commands).
_rvsadm() {
    local cur prev words cword
    _init_completion 2>/dev/null || { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; cword=$COMP_CWORD; words=("${COMP_WORDS[@]}"); }
    case "$prev" in
        -b|--sched-flags) COMPREPLY=($(compgen -W "sh-fallback sh-port mh-fallback mh-port sh-fallback,sh-port mh-fallback,mh-port" -- "$cur")); return ;;
        -s|--scheduler) COMPREPLY=($(compgen -W "rr wrr lc wlc sed nq sh dh mh" -- "$cur")); return ;;
        --on-remove) COMPREPLY=($(compgen -W "reset keep" -- "$cur")); return ;;
        --when-full) COMPREPLY=($(compgen -W "refuse stateless" -- "$cur")); return ;;
        --synproxy-invalid-ack) COMPREPLY=($(compgen -W "reset drop" -- "$cur")); return ;;
        --forwarding) COMPREPLY=($(compgen -W "nat dr tunnel fullnat" -- "$cur")); return ;;
        --start-daemon) COMPREPLY=($(compgen -W "master backup" -- "$cur")); return ;;
        --socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        show) COMPREPLY=($(compgen -W "services stats rate connections drops neighbors health config ha node" -- "$cur")); return ;;
        service) COMPREPLY=($(compgen -W "add edit del" -- "$cur")); return ;;
        server) COMPREPLY=($(compgen -W "add edit del maint ready" -- "$cur")); return ;;
        node) COMPREPLY=($(compgen -W "drain undrain" -- "$cur")); return ;;
        add|edit|del|choose|sources) COMPREPLY=($(compgen -W "tcp udp" -- "$cur")); return ;;
    esac
    if [ "$cword" -eq 1 ] && [[ "$cur" != -* ]]; then
        COMPREPLY=($(compgen -W "service server show node choose sources reload save-config zero clear save restore version ping" -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -W "-A -E -D -a -e -d -L -l -C -Z -S -R -t -u -r -s -p -M -g -i -m -b --fullnat -w -n -c
        --stats --rate --exact --nosort --set --timeout --sched-flags --mh-size --on-remove --when-full
        --sloppy-tcp --cluster --extra --synproxy --synproxy-invalid-ack --timeouts --replace --start-daemon
        --stop-daemon --daemon --syncid --socket --json --help" -- "$cur"))
}
complete -F _rvsadm rvsadm
