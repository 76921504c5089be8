/** The engine's configuration: CONNMIX's `connmix.yaml` schema plus our extensions, loaded and validated. */
export { loadConfig, parseConfig, ConfigError } from './load';
export type { LoadOptions } from './load';
export { defaultConfig, defaultServerConfig, defaultLuaRedisConfig } from './defaults';
export type * from './schema';
