import { rawWs } from './raw-ws';
import { socketioRedis, socketioRedis2 } from './socketio';
import { connmixMemory, connmixRedis2, connmixEngine2 } from './connmix';
import type { TargetSpec } from './target';

/** Every target, in report order; connmix-ts first among equals is compared to each of the others. */
export const TARGETS: TargetSpec[] = [rawWs, socketioRedis, socketioRedis2, connmixMemory, connmixRedis2, connmixEngine2];

/** The connmix-ts target that ratios are computed for, and its two-node variant. */
export const SUBJECT = 'connmix-ts';
