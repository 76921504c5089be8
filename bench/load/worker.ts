/**
 * A load-generator process (forked by fleet.ts). It runs commands from the parent over IPC and answers
 * each with `{id, result}` or `{id, error}`. It exits when the parent goes away, so no client outlives
 * the run.
 */
import { Viewers } from './viewers';
import { Storm } from './storm';
import { ChatMembers } from './chat';
import { httpPublish, wsPublish } from './api-clients';

export type Command =
  | { op: 'viewers.open'; params: Parameters<Viewers['open']>[0] }
  | { op: 'viewers.reset'; minT: number }
  | { op: 'viewers.count' }
  | { op: 'viewers.stats' }
  | { op: 'viewers.close' }
  | { op: 'storm.connect'; params: Parameters<Storm['connect']>[0] }
  | { op: 'storm.messages'; params: Parameters<Storm['messages']>[0] }
  | { op: 'storm.close' }
  | { op: 'chat.open'; params: Parameters<ChatMembers['open']>[0] }
  | { op: 'chat.say'; params: Parameters<ChatMembers['say']>[0] }
  | { op: 'chat.reset'; minT: number }
  | { op: 'chat.count' }
  | { op: 'chat.stats' }
  | { op: 'chat.close' }
  | { op: 'api.http'; params: Parameters<typeof httpPublish>[0] }
  | { op: 'api.ws'; params: Parameters<typeof wsPublish>[0] }
  | { op: 'cpu' };

const viewers = new Viewers();
const storm = new Storm();
const chat = new ChatMembers();

async function run(command: Command): Promise<unknown> {
  switch (command.op) {
    case 'viewers.open':
      return viewers.open(command.params);
    case 'viewers.reset':
      return viewers.reset(command.minT);
    case 'viewers.count':
      return viewers.count();
    case 'viewers.stats':
      return viewers.stats();
    case 'viewers.close':
      return viewers.close();
    case 'storm.connect':
      return storm.connect(command.params);
    case 'storm.messages':
      return storm.messages(command.params);
    case 'storm.close':
      return storm.close();
    case 'chat.open':
      return chat.open(command.params);
    case 'chat.say':
      return chat.say(command.params);
    case 'chat.reset':
      return chat.reset(command.minT);
    case 'chat.count':
      return chat.count();
    case 'chat.stats':
      return chat.stats();
    case 'chat.close':
      return chat.close();
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
