/**
 * The docker commands forklift runs on a Swarm's managers (and a node itself): to read the cluster
 * (node ls, service ls, node ps, info) and to change a node's availability. Data until they run:
 * the local side (local/swarm-node.ts) sends them over SSH and parses the JSON they print.
 */
import { shq } from "../shell";

/** Seconds one docker command of a rollout may take on a manager (a hung manager fails the step). */
export const DOCKER_SECONDS = 30;

/** `docker ARGS...`, through `sudo -n` for a login user other than root, ended after DOCKER_SECONDS. */
export function dockerCommand(args: string[], sudo: boolean): string {
    return [...(sudo ? ["sudo", "-n"] : []), "timeout", String(DOCKER_SECONDS), "docker", ...args].map(shq).join(" ");
}

/**
 * What the check reads of a Swarm manager outside the fleet (swarmManagers): its `docker info`
 * Swarm part on the first line, then the cluster's nodes, one JSON line each.
 */
export function swarmProbeCommand(sudo: boolean): string {
    return `${dockerCommand(["info", "--format", "{{json .Swarm}}"], sudo)} && ${dockerCommand(["node", "ls", "--format", "{{json .}}"], sudo)}`;
}
