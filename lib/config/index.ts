/**
 * Stack configuration: the one place where raw `forklift:*` values become a typed, defaulted,
 * validated `ForkliftConfig`. Pure: `parseConfig` takes the raw key/value map (as
 * `pulumi.runtime.allConfig()` returns it) and either returns the whole config or throws one
 * `ConfigError` that lists every problem as `forklift:<key>: got <value>; expected <form>`. Nothing
 * is registered before this runs. The files, one job each: types.ts (shapes, DEFAULTS, the keys),
 * validators.ts (one value's form), problems.ts (the problem lines and secrets kept out of them),
 * reader.ts (one key at a time), targets.ts (host entries), cross-check.ts (rules across keys,
 * unknown keys) and parse.ts (the order of it all).
 */

export type { ArtifactSourceConfig, ConfigKey, Ec2Settings, ForkConfig, ForkliftConfig, RawConfig, Recipe, SshTarget, SwarmConfig, SwarmManager } from "./types";
export { CONFIG_KEYS, DEFAULTS, PROJECT, RECIPES } from "./types";
export type { Validator } from "./validators";
export { isOpenCidr, normalizePrivateKey, valid } from "./validators";
export { ConfigError, redactSecrets } from "./problems";
export { launchedFleetNames } from "./cross-check";
export { parseConfig } from "./parse";
