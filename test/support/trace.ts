/**
 * A host's traces as one sorted text, to compare a host before forklift and after it is given
 * back: the files under the directories a Docker daemon and forklift write (type, mode, owner,
 * size of regular files, link target), mounts, network links, iptables rules (without counters),
 * the docker group, dpkg diversions and ip_forward.
 *
 * Left out, because they change by themselves while a host runs: the journal and logs (/var/log),
 * systemd's runtime state (/run/systemd, /run/user; it keeps /run/systemd/transient once the
 * daemon's container scopes made it), login records (/run/utmp), sshd's per-session files
 * (/run/sshd*), systemd timers' stamps and the random seed (/var/lib/systemd/timers,
 * /var/lib/systemd/random-seed). And the size of /var/lib/dpkg/diversions-old, dpkg's copy of the
 * diversion list before its last change (the list itself is compared).
 *
 * Left out on purpose: forklift's host lock, /run/lock/forklift.lock, an empty file that stays (in
 * /run: gone at the next boot). A run waiting on a removed lock file and a run that locked its new
 * namesake would both go ahead (README, Teardown).
 */
import { TestHost, ssh } from "../../testbed/testbed";

export interface TraceOptions {
    /**
     * The host runs a Docker daemon of its own before and after (Debian's docker.io): leave out its
     * data and runtime state (/var/lib/docker, /var/lib/containerd, /run/docker, /run/containerd,
     * their mounts, its PID file) and container veths, which a running daemon changes by itself.
     */
    daemonData?: boolean;
}

export function traceSnapshot(host: TestHost, opts: TraceOptions = {}): string {
    const volatile = ["/var/log", "/run/systemd", "/run/user", "/run/utmp", "/run/sshd", "/run/sshd.pid", "/var/lib/systemd/timers", "/var/lib/systemd/random-seed", "/run/lock/forklift.lock"];
    const daemon = ["/var/lib/docker", "/var/lib/containerd", "/run/docker", "/run/containerd", "/run/docker.pid"];
    const prune = [...volatile, ...(opts.daemonData ? daemon : [])].map((p) => `-path ${p}`).join(" -o ");
    const dirs = ["/etc", "/var/lib", ...(opts.daemonData ? [] : ["/var/lib/docker"]), "/run", "/run/lock", "/opt", "/usr/local", "/usr/bin", "/usr/sbin"];
    const mountFilter = opts.daemonData ? "^/(run/(user|systemd|docker|containerd)|var/lib/(docker|containerd))/" : "^/run/(user|systemd)/";
    const script = String.raw`
        for d in ${dirs.join(" ")}; do
            find "$d" -xdev \( ${prune} \) -prune -o -type f -printf '%p file %m %u:%g size=%s\n' -o -printf '%p %y %m %u:%g %l\n'
        done | sed 's|^\(/var/lib/dpkg/diversions-old file .*\) size=.*|\1|' | sort -u
        findmnt -rn -o TARGET,FSTYPE | grep -Ev '${mountFilter}' | sort
        ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print "link " $2}' | ${opts.daemonData ? "grep -v '^link veth'" : "cat"} | sort
        for c in iptables ip6tables; do
            for t in filter nat mangle raw; do "$c" -t "$t" -S 2>&1 | sed "s/^/$c $t: /"; done
        done
        echo "group: $(getent group docker)"
        dpkg-divert --list | sort
        echo "ip_forward: $(cat /proc/sys/net/ipv4/ip_forward)"
    `;
    const r = ssh(host, "bash -s", { input: script });
    if (r.code !== 0) throw new Error(`trace snapshot failed on ${host.name}: ${r.stderr}`);
    return r.stdout;
}
