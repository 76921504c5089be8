export { Engine, type Listener } from './engine';
export { loadConfig, parseConfig, ConfigError, defaultConfig } from './config';
export type { Config } from './config';
export { Logger } from './log';
export type { Broker, PublishResult, NodeInfo } from './mesh/broker';
