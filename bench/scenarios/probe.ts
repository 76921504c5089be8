import * as http from 'node:http';
import { dialect as dialectOf } from '../load/dialects';
import { openClient } from '../load/connect';
import { comment } from '../load/payload';
import type { RunningTarget } from '../targets/target';

/** The video the probe uses, apart from every scenario's. */
const PROBE_VIDEO = 999_999;

/**
 * Checks that a multi-node target is one mesh before measuring it: a viewer on the last node must get
 * a comment published on the first. Throws a plain message when it does not (for example while the
 * Redis broker is unfinished), so the target fails clearly instead of reporting 100% loss.
 */
export async function probeMesh(target: RunningTarget, timeoutMs = 5000): Promise<void> {
  if (target.nodes.length < 2 || !target.meshed) return;
  const dialect = dialectOf(target.dialect);
  const last = target.nodes[target.nodes.length - 1];
  let answered: () => void = () => {};
  let delivered: () => void = () => {};
  const subscribed = new Promise<void>((resolve) => (answered = resolve));
  const received = new Promise<void>((resolve) => (delivered = resolve));
  const ws = await openClient({
    url: dialect.url(last.wsUrl),
    dialect,
    localAddress: '127.0.0.1',
    timeoutMs,
    onData: (_ws, data) => (dialect.isResult(data) ? answered() : delivered()),
  });
  try {
    ws.send(dialect.subscribe(PROBE_VIDEO));
    await within(subscribed, timeoutMs, `the probe viewer on node ${target.nodes.length - 1} got no answer to subscribe`);
    const first = target.nodes[0];
    const body = JSON.stringify({ c: `video:${PROBE_VIDEO}`, d: comment(0, 0) });
    // Once more each 500 ms: a fresh subscription may take a moment to reach the broker.
    const timer = setInterval(() => post(first.httpHost, first.httpPort, body), 500);
    post(first.httpHost, first.httpPort, body);
    try {
      await within(received, timeoutMs, `a publish on node 0 did not reach a viewer on node ${target.nodes.length - 1} within ${timeoutMs} ms: the nodes do not form a mesh (broker not working?)`);
    } finally {
      clearInterval(timer);
    }
  } finally {
    ws.terminate();
  }
}

function post(host: string, port: number, body: string): void {
  const req = http.request({ host, port, path: '/v1/mesh/publish', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => res.resume());
  req.on('error', () => {});
  req.end(body);
}

function within(promise: Promise<void>, ms: number, message: string): Promise<void> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]);
}
