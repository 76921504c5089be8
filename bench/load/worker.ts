/**
 * A load-generator process (forked by fleet.ts). It runs commands from the parent over IPC and answers
 * each with `{id, result}` or `{id, error}`. It exits when the parent goes away, so no client outlives
 * the run.
 */
import { Viewers } from './viewers';
import { Storm } from './storm';
import { ChatMembers } from './chat';
import { httpPublish, wsPublish } from './api-clients';

/** This process's audiences: their step commands (reset, count, stats, close) are the same for each. */
const audiences = { viewers: new Viewers(), chat: new ChatMembers() };
export type AudienceName = keyof typeof audiences;

export type Command =
  | { op: 'viewers.open'; params: Parameters<Viewers['open']>[0] }
  | { op: 'chat.open'; params: Parameters<ChatMembers['open']>[0] }
  | { op: 'chat.say'; params: Parameters<ChatMembers['say']>[0] }
  | { op: 'audience.reset'; audience: AudienceName; minT: number }
  | { op: 'audience.count'; audience: AudienceName }
  | { op: 'audience.stats'; audience: AudienceName }
  | { op: 'audience.close'; audience: AudienceName }
  | { op: 'storm.connect'; params: Parameters<Storm['connect']>[0] }
  | { op: 'storm.messages'; params: Parameters<Storm['messages']>[0] }
  | { op: 'storm.close' }
  | { op: 'api.http'; params: Parameters<typeof httpPublish>[0] }
  | { op: 'api.ws'; params: Parameters<typeof wsPublish>[0] }
  | { op: 'cpu' };

const storm = new Storm();

async function run(command: Command): Promise<unknown> {
  switch (command.op) {
    case 'viewers.open':
      return audiences.viewers.open(command.params);
    case 'chat.open':
      return audiences.chat.open(command.params);
    case 'chat.say':
      return audiences.chat.say(command.params);
    case 'audience.reset':
      return audiences[command.audience].reset(command.minT);
    case 'audience.count':
      return audiences[command.audience].count();
    case 'audience.stats':
      return audiences[command.audience].stats();
    case 'audience.close':
      return audiences[command.audience].close();
    case 'storm.connect':
      return storm.connect(command.params);
    case 'storm.messages':
      return storm.messages(command.params);
    case 'storm.close':
      return storm.close();
    case 'api.http':
      return httpPublish(command.params);
    case 'api.ws':
      return wsPublish(command.params);
    case 'cpu': {
      const usage = process.cpuUsage();
      return (usage.user + usage.system) / 1e6;
    }
  }
}

process.on('message', (message: { id: number; command: Command }) => {
  run(message.command).then(
    (result) => process.send!({ id: message.id, result: result ?? null }),
    (error: Error) => process.send!({ id: message.id, error: error.stack ?? String(error) }),
  );
});
process.on('disconnect', () => process.exit(0));
