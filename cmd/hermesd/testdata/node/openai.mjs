// Drives hermesd with the official OpenAI Node SDK and prints one JSON object
// of observations on stdout; node_sdk_test.go asserts on it.
// Usage: HERMES_BASE_URL=http://127.0.0.1:PORT/v1 node openai.mjs offline|tools|reasoning|files
import OpenAI, { toFile } from 'openai';

const client = new OpenAI({ baseURL: process.env.HERMES_BASE_URL, apiKey: 'unused', maxRetries: 0, timeout: 15000 });
const out = {};

// textOf joins the output_text parts of a response's message items (the
// SDK adds output_text only to non-streamed responses).
const textOf = (r) => r.output.filter((o) => o.type === 'message')
  .flatMap((o) => o.content).filter((c) => c.type === 'output_text').map((c) => c.text).join('');

async function run(name, fn) {
  try {
    out[name] = await fn();
  } catch (e) {
    out[name] = { error: String(e && e.stack ? e.stack : e), status: e && e.status };
  }
}

async function offline() {
  await run('chat', async () => {
    const r = await client.chat.completions.create({
      model: 'hermes-agent',
      messages: [{ role: 'user', content: 'hello from node' }],
    });
    return { id: r.id, object: r.object, model: r.model, content: r.choices[0].message.content,
      finish: r.choices[0].finish_reason, usage: r.usage };
  });

  await run('chatStream', async () => {
    const stream = await client.chat.completions.create({
      model: 'hermes-agent',
      messages: [{ role: 'user', content: '/tokens 7' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const ids = new Set();
    let text = '', finish = null, usage = null, chunks = 0;
    for await (const ch of stream) {
      chunks++;
      ids.add(ch.id);
      for (const c of ch.choices) {
        if (c.delta.content) text += c.delta.content;
        if (c.finish_reason) finish = c.finish_reason;
      }
      if (ch.usage) usage = ch.usage;
    }
    return { chunks, ids: [...ids], text, finish, usage };
  });

  await run('responses', async () => {
    const r = await client.responses.create({ model: 'hermes-agent', input: 'hello responses' });
    return { id: r.id, object: r.object, status: r.status, outputText: r.output_text,
      outputTypes: r.output.map((o) => o.type), usage: r.usage };
  });

  await run('responsesStream', async () => {
    const stream = await client.responses.create({ model: 'hermes-agent', input: '/tokens 5', stream: true });
    const types = [], seqs = [];
    let text = '', completed = null;
    for await (const ev of stream) {
      types.push(ev.type);
      seqs.push(ev.sequence_number);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') completed = ev.response;
    }
    return { types, seqs, text, completedId: completed && completed.id,
      completedText: completed && textOf(completed), usage: completed && completed.usage };
  });

  // The SDK's helper stream (responses.stream) with its final response.
  await run('responsesHelperStream', async () => {
    const stream = client.responses.stream({ model: 'hermes-agent', input: '/tokens 3' });
    let deltas = '';
    stream.on('response.output_text.delta', (ev) => { deltas += ev.delta; });
    const final = await stream.finalResponse();
    return { deltas, status: final.status, outputText: final.output_text };
  });

  // A tool the agent runs itself shows as a hosted mcp_call item, which
  // the helper stream accumulates too. The stream ends with data: [DONE]
  // after response.completed; the SDK ignores it (no event, no error).
  await run('agentToolStream', async () => {
    const stream = client.responses.stream({ model: 'hermes-agent', input: '/tool terminal {"command":"echo node-was-here"}' });
    const types = [];
    stream.on('event', (ev) => types.push(ev.type));
    const final = await stream.finalResponse();
    return { types, status: final.status, outputTypes: final.output.map((o) => o.type),
      call: final.output.filter((o) => o.type === 'mcp_call').map((o) => ({ name: o.name, args: o.arguments, serverLabel: o.server_label, output: o.output, error: o.error })),
      text: final.output_text };
  });

  await run('chain', async () => {
    const a = await client.responses.create({ model: 'hermes-agent', input: 'first marker zebra' });
    const b = await client.responses.create({ model: 'hermes-agent', input: 'second marker yak', previous_response_id: a.id });
    const stream = await client.responses.create({ model: 'hermes-agent', input: '/echo-history', previous_response_id: b.id, stream: true });
    let c = null;
    for await (const ev of stream) if (ev.type === 'response.completed') c = ev.response;
    const got = await client.responses.retrieve(c.id);
    return { ids: [a.id, b.id, c.id], prev: [a.previous_response_id, b.previous_response_id, c.previous_response_id],
      last: textOf(c), retrieved: { id: got.id, status: got.status, text: got.output_text, prev: got.previous_response_id } };
  });

  await run('conversation', async () => {
    const name = 'node-conv-' + process.pid;
    const a = await client.responses.create({ model: 'hermes-agent', input: 'remember the walrus', conversation: name });
    const b = await client.responses.create({ model: 'hermes-agent', input: '/echo-history', conversation: name });
    return { a: a.output_text, b: b.output_text, conversation: b.conversation };
  });

  await run('notFound', async () => {
    try {
      await client.responses.retrieve('resp_doesnotexist');
      return { status: 200 };
    } catch (e) {
      return { status: e.status, name: e.constructor.name };
    }
  });
}

async function tools() {
  const tool = { type: 'function', function: { name: 'get_weather', description: 'weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
  await run('chatTool', async () => {
    const messages = [{ role: 'user', content: 'weather in Paris?' }];
    const first = await client.chat.completions.create({ model: 'hermes-agent', messages, tools: [tool] });
    const msg = first.choices[0].message;
    const calls = msg.tool_calls || [];
    messages.push(msg);
    for (const c of calls) messages.push({ role: 'tool', tool_call_id: c.id, content: 'sunny' });
    const second = await client.chat.completions.create({ model: 'hermes-agent', messages, tools: [tool] });
    return { finish1: first.choices[0].finish_reason, calls: calls.map((c) => ({ id: c.id, name: c.function.name, args: c.function.arguments })),
      finish2: second.choices[0].finish_reason, answer: second.choices[0].message.content };
  });

  await run('chatToolStream', async () => {
    const stream = client.chat.completions.stream({ model: 'hermes-agent',
      messages: [{ role: 'user', content: 'weather in Paris?' }], tools: [tool] });
    const done = [];
    stream.on('tool_calls.function.arguments.done', (ev) => done.push({ name: ev.name, args: ev.arguments }));
    const final = await stream.finalChatCompletion();
    const c = final.choices[0];
    return { finish: c.finish_reason, done, calls: (c.message.tool_calls || []).map((t) => ({ name: t.function.name, args: t.function.arguments })) };
  });
}

// Against a reasoning upstream (the form named in the prompt): the
// reasoning comes apart from the answer in every shape the SDK exposes.
async function reasoning() {
  for (const form of ['reasoning_content', 'reasoning', 'think']) {
    await run('chat_' + form, async () => {
      const r = await client.chat.completions.create({ model: 'hermes-agent',
        messages: [{ role: 'user', content: 'hi form=' + form }] });
      const m = r.choices[0].message;
      return { content: m.content, reasoning: m.reasoning_content, reasoningTokens: r.usage.completion_tokens_details.reasoning_tokens };
    });
    await run('chatStream_' + form, async () => {
      // The stream helper accumulates what it knows; reasoning_content is
      // read off the chunks, as Open WebUI and LibreChat do.
      const stream = client.chat.completions.stream({ model: 'hermes-agent',
        messages: [{ role: 'user', content: 'hi form=' + form }] });
      let reasoning = '';
      stream.on('chunk', (ch) => { for (const c of ch.choices) if (c.delta.reasoning_content) reasoning += c.delta.reasoning_content; });
      const final = await stream.finalChatCompletion();
      return { content: final.choices[0].message.content, reasoning };
    });
  }
  await run('responsesStream', async () => {
    const stream = client.responses.stream({ model: 'hermes-agent', input: 'hi form=think',
      reasoning: { summary: 'auto' }, include: ['reasoning.encrypted_content'] });
    let reasoningText = '', summaryText = '';
    stream.on('response.reasoning_text.delta', (ev) => { reasoningText += ev.delta; });
    stream.on('response.reasoning_summary_text.delta', (ev) => { summaryText += ev.delta; });
    const final = await stream.finalResponse();
    const rs = final.output.find((o) => o.type === 'reasoning');
    return { reasoningText, summaryText, outputTypes: final.output.map((o) => o.type), outputText: final.output_text,
      item: { content: rs.content, summary: rs.summary, encrypted: typeof rs.encrypted_content === 'string' && rs.encrypted_content.length > 0 },
      reasoningTokens: final.usage.output_tokens_details.reasoning_tokens };
  });
}

// files uploads with files.create (multipart, as the SDK builds it), reads
// the file back, and sends it by file_id in a Responses input_file and as
// file_data in a chat file part; the offline model's /echo-history shows
// what the model received.
async function files() {
  await run('files', async () => {
    const f = await client.files.create({ file: await toFile(Buffer.from('id,city\n1,Lyon\n'), 'cities.csv', { type: 'text/csv' }),
      purpose: 'user_data' });
    const got = await client.files.retrieve(f.id);
    const ids = [];
    for await (const x of client.files.list()) ids.push(x.id);
    const content = await (await client.files.content(f.id)).text();
    const r = await client.responses.create({ model: 'hermes-agent', input: [{ role: 'user', content: [
      { type: 'input_text', text: '/echo-history' }, { type: 'input_file', file_id: f.id }] }] });
    const chat = await client.chat.completions.create({ model: 'hermes-agent', messages: [{ role: 'user', content: [
      { type: 'text', text: '/echo-history' },
      { type: 'file', file: { filename: 'notes.md', file_data: 'data:text/markdown;base64,' + Buffer.from('# Notes\nnode was here\n').toString('base64') } }] }] });
    const del = await client.files.delete(f.id);
    return { created: f, got: got.id, ids, content, responseText: r.output_text, chatText: chat.choices[0].message.content, deleted: del };
  });
}

const mode = process.argv[2];
if (mode === 'offline') await offline();
else if (mode === 'tools') await tools();
else if (mode === 'reasoning') await reasoning();
else if (mode === 'files') await files();
else throw new Error('mode must be offline, tools, reasoning or files');
process.stdout.write(JSON.stringify(out) + '\n');
