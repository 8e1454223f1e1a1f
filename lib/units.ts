/**
 * systemd units for a static Docker install, rendered from moby's contrib/init/systemd units.
 * Pure: the same inputs always give the same bytes, so a host can compare hashes and skip
 * restarts when nothing changed.
 */
import { canonicalJson } from "./hash";

export interface UnitOptions {
    /** Where the docker/* binaries are linked, e.g. /usr/bin. */
    installDir: string;
    /** True when the artifact ships containerd and forklift runs it as its own unit. */
    shipsContainerd: boolean;
}

/** Binaries of a static docker tgz that mean "containerd comes with the release". */
export function needsContainerdUnit(binaries: readonly string[]): boolean {
    return binaries.includes("containerd") && binaries.some((b) => b.startsWith("containerd-shim"));
}

/** systemd's default PATH with the install dir first, so dockerd finds the release's runc/containerd. */
function servicePath(installDir: string): string {
    const rest = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].filter((d) => d !== installDir);
    return [installDir, ...rest].join(":");
}

/** daemon.json with sorted keys, indented: stable bytes for the same settings. */
export function prettyCanonical(value: Record<string, unknown>): string {
    return JSON.stringify(JSON.parse(canonicalJson(value)), null, 2) + "\n";
}

const HEADER = "# Managed by forklift: removed by `pulumi destroy`, rewritten by `pulumi up`.\n";

export function renderDockerSocket(): string {
    return `${HEADER}[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
`;
}

export function renderDockerService(o: UnitOptions): string {
    const containerdArg = o.shipsContainerd ? " --containerd=/run/containerd/containerd.sock" : "";
    return `${HEADER}[Unit]
Description=Docker Application Container Engine
Documentation=https://docs.docker.com
After=network-online.target nss-lookup.target docker.socket firewalld.service containerd.service time-set.target
Wants=network-online.target${o.shipsContainerd ? " containerd.service" : ""}
Requires=docker.socket
StartLimitBurst=3
StartLimitIntervalSec=60

[Service]
Type=notify
Environment=PATH=${servicePath(o.installDir)}
ExecStart=${o.installDir}/dockerd -H fd://${containerdArg}
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
RestartSec=2
Restart=always
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
`;
}

export function renderContainerdService(o: UnitOptions): string {
    return `${HEADER}[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
Environment=PATH=${servicePath(o.installDir)}
ExecStartPre=-/sbin/modprobe overlay
ExecStart=${o.installDir}/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`;
}

/** Every file forklift manages on a host, by its name in /etc/systemd/system (or daemon.json). */
export interface ManagedFiles {
    "docker.socket": string;
    "docker.service": string;
    "containerd.service"?: string;
    "daemon.json"?: string;
}

/**
 * The files for a host. SETTINGS is daemonJson (null: the host's own daemon.json is left alone);
 * live-restore is on unless it says otherwise, so that containers keep running while the engine
 * restarts.
 */
export function renderManagedFiles(o: UnitOptions, settings: Record<string, unknown> | null): ManagedFiles {
    const files: ManagedFiles = {
        "docker.socket": renderDockerSocket(),
        "docker.service": renderDockerService(o),
    };
    if (o.shipsContainerd) files["containerd.service"] = renderContainerdService(o);
    if (settings !== null) files["daemon.json"] = prettyCanonical({ "live-restore": true, ...settings });
    return files;
}

/**
 * daemon.json for a Swarm node: SETTINGS without live-restore on, which dockerd refuses in swarm
 * mode (a node's tasks stop with its engine there anyway: forklift drains it first). Undefined
 * where daemon.json is not managed.
 */
export function renderSwarmDaemonJson(settings: Record<string, unknown> | null): string | undefined {
    if (settings === null) return undefined;
    const { "live-restore": liveRestore, ...rest } = settings;
    return prettyCanonical(liveRestore === false ? settings : rest);
}
