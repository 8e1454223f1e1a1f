/** Shared inputs for the unit tests. The key is a throwaway generated for these tests only. */
export const TEST_PRIVATE_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBNdzMfcN5Pfb1pQiV1Ea0mAVgbnE377916xPHQk1KDpwAAAJCidYooonWK
KAAAAAtzc2gtZWQyNTUxOQAAACBNdzMfcN5Pfb1pQiV1Ea0mAVgbnE377916xPHQk1KDpw
AAAEC53XE7iRmSE1CnsSNWaozKroeKVk6molLP1VRSPj7wyk13Mx9w3k99vWlCJXURrSYB
WBucTfvv3XrE8dCTUoOnAAAAB2ZpeHR1cmUBAgMEBQY=
-----END OPENSSH PRIVATE KEY-----
`;
export const TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE13Mx9w3k99vWlCJXURrSYBWBucTfvv3XrE8dCTUoOn";

/** A valid hosts-mode stack (existing builder + two existing fleet hosts), as stack values. */
export function hostsStack(): Record<string, unknown> {
    return {
        recipe: "docker-ce",
        forkRepo: "git://10.78.1.1/docker-ce.git",
        forkRef: "v18.03.1-ce",
        builderHost: { name: "builder", address: "10.0.0.2", user: "root", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY },
        fleetHosts: [
            { name: "h1", address: "10.0.0.4", user: "root", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY },
            { address: "10.0.0.3", port: 22, privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY },
        ],
    };
}
