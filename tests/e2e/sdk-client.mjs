// A program on the official Anthropic SDK, configured only by its environment
// (ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY) as a user's batch job would be: it asks and streams,
// two at a time, until the file SDK_STOP_FILE names exists (a test makes it on an event) or
// SECONDS seconds have passed, and prints {"requests", "errors": [...]} on stdout.
import { existsSync } from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';

const seconds = Number(process.argv[2] || 10);
const stopFile = process.env.SDK_STOP_FILE;
const stopped = () => stopFile !== undefined && existsSync(stopFile);
const client = new Anthropic({ maxRetries: 0 });
const errors = [];
let requests = 0;
const started = Date.now();
while (Date.now() - started < seconds * 1000 && !stopped()) {
  const n = requests;
  const plain = client.messages.create({ model: 'claude-opus-4-6', max_tokens: 32,
    messages: [{ role: 'user', content: `plain ${n}` }] })
    .then((m) => { if (m.content[0].text !== `Hello! You said: plain ${n}`) errors.push(`plain ${n}: ${m.content[0].text}`); });
  const streamed = client.messages.stream({ model: 'claude-opus-4-6', max_tokens: 32,
    messages: [{ role: 'user', content: `streamed ${n}` }] }).finalText()
    .then((t) => { if (t !== `Hello! You said: streamed ${n}`) errors.push(`streamed ${n}: ${t}`); });
  const results = await Promise.allSettled([plain, streamed]);
  for (const r of results) if (r.status === 'rejected') errors.push(`${n}: ${r.reason?.status ?? ''} ${r.reason?.message ?? r.reason}`);
  requests += 2;
  await new Promise((r) => { setTimeout(r, 250); });
}
process.stdout.write(`${JSON.stringify({ requests, errors })}\n`);
