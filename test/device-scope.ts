// Each test worker's servers claim devices in a scope of their own: the workers run side by side on the same recorded
// fake devices (same UUIDs), and a machine-wide claim from one worker's test must not hold another worker's devices.
// The servers a test spawns inherit the scope, so they do see each other's claims.
import { randomUUID } from 'node:crypto';

process.env.RATCHET_DEVICE_SCOPE ??= `test-worker-${randomUUID()}`;
