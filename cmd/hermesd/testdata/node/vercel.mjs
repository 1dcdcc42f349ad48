// Drives hermesd with the Vercel AI SDK (ai + @ai-sdk/openai) and prints one
// JSON object of observations on stdout; node_sdk_test.go asserts on it.
// Usage: HERMES_BASE_URL=http://127.0.0.1:PORT/v1 node vercel.mjs offline|tools|reasoning
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText, stepCountIs, tool } from 'ai';
import { z } from 'zod';

// sent records, per request to /responses, the types of the input items the
// SDK sent (item_reference, function_call_output, …).
const sent = [];
const openai = createOpenAI({
  baseURL: process.env.HERMES_BASE_URL,
  apiKey: 'unused',
  fetch: async (url, init) => {
    if (String(url).endsWith('/responses') && init && typeof init.body === 'string') {
      const body = JSON.parse(init.body);
      sent.push(Array.isArray(body.input) ? body.input.map((i) => i.type || 'message:' + i.role) : [typeof body.input]);
    }
    return fetch(url, init);
  },
});
const out = {};

async function run(name, fn) {
  try {
    out[name] = await fn();
  } catch (e) {
    out[name] = { error: String(e && e.stack ? e.stack : e), status: e && e.statusCode,
      body: e && e.responseBody, cause: e && e.cause ? String(e.cause) : undefined };
  }
}

// streamed consumes a streamText result, recording part types and errors.
async function streamed(result) {
  const parts = [];
  const errors = [];
  let text = '';
  for await (const p of result.fullStream) {
    if (parts[parts.length - 1] !== p.type) parts.push(p.type);
    if (p.type === 'text-delta') text += p.text;
    if (p.type === 'error') errors.push(String(p.error && p.error.stack ? p.error.stack : p.error));
  }
  return { parts, text, errors, finishReason: await result.finishReason, usage: await result.totalUsage,
    responseId: (await result.response).id };
}

const plain = (r) => ({ text: r.text, finishReason: r.finishReason, usage: r.totalUsage, responseId: r.response.id });

async function offline() {
  for (const [name, model] of [['chat', openai.chat('hermes-agent')], ['responses', openai.responses('hermes-agent')], ['default', openai('hermes-agent')]]) {
    await run(name + 'Generate', async () => plain(await generateText({ model, prompt: 'hello vercel ' + name, maxRetries: 0 })));
    await run(name + 'Stream', async () => streamed(streamText({ model, prompt: '/tokens 6', maxRetries: 0 })));
  }

  // Several turns on the Responses model, chained by previousResponseId;
  // only the new user message is sent each time.
  await run('chain', async () => {
    const model = openai.responses('hermes-agent');
    const a = await generateText({ model, prompt: 'vercel first penguin', maxRetries: 0 });
    const b = await generateText({ model, prompt: 'vercel second otter', maxRetries: 0,
      providerOptions: { openai: { previousResponseId: a.response.id } } });
    const c = streamText({ model, prompt: '/echo-history', maxRetries: 0,
      providerOptions: { openai: { previousResponseId: b.response.id } } });
    const s = await streamed(c);
    return { ids: [a.response.id, b.response.id, s.responseId], last: s.text, errors: s.errors };
  });

  // A whole conversation resent as messages (what useChat does by default):
  // the assistant turns come back as Responses input items.
  await run('messages', async () => {
    const model = openai.responses('hermes-agent');
    const r = await generateText({ model, maxRetries: 0, messages: [
      { role: 'user', content: 'vercel one koala' },
      { role: 'assistant', content: 'noted koala' },
      { role: 'user', content: '/echo-history' },
    ] });
    return plain(r);
  });

  // The messages of an earlier result passed back (the usual multi-turn
  // pattern): with store on, the SDK sends the assistant's text as an
  // item_reference to the stored output item.
  await run('itemReference', async () => {
    const model = openai.responses('hermes-agent');
    const first = [{ role: 'user', content: 'vercel first heron' }];
    const a = await generateText({ model, messages: first, maxRetries: 0 });
    sent.length = 0;
    const b = await generateText({ model, maxRetries: 0,
      messages: [...first, ...a.responseMessages, { role: 'user', content: '/echo-history' }] });
    return { ...plain(b), sent: [...sent] };
  });

  // A tool hermesd's agent runs itself arrives as a hosted mcp_call item:
  // the SDK reports it as a provider-executed tool call and result and
  // runs nothing. Its messages sent back (stateless) are accepted.
  await run('agentTool', async () => {
    const model = openai.responses('hermes-agent');
    const prompt = '/tool terminal {"command":"echo vercel-ran"}';
    const r = await generateText({ model, prompt, maxRetries: 0 });
    const content = r.content.map((c) => c.type + (c.toolName ? ':' + c.toolName : '') + (c.providerExecuted ? ':provider' : ''));
    const follow = await generateText({ model, maxRetries: 0,
      messages: [{ role: 'user', content: prompt }, ...r.response.messages, { role: 'user', content: '/echo-history' }] });
    const s = await streamed(streamText({ model, prompt, maxRetries: 0 }));
    return { text: r.text, finishReason: r.finishReason, steps: r.steps.length, content, followText: follow.text,
      followSent: sent[sent.length - 2], stream: s };
  });
}

async function tools() {
  const executed = [];
  const getWeather = tool({
    description: 'weather for a city',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      executed.push(city);
      return `sunny in ${city}`;
    },
  });
  await run('toolGenerate', async () => {
    executed.length = 0;
    sent.length = 0;
    const first = [{ role: 'user', content: 'weather in Paris?' }];
    const r = await generateText({ model: openai.responses('hermes-agent'), messages: first, maxRetries: 0,
      tools: { get_weather: getWeather }, stopWhen: stepCountIs(3) });
    // A next turn that resends the whole exchange: the tool call, its
    // output and the stored answer (as an item_reference).
    const sentSteps = [...sent];
    sent.length = 0;
    const next = await generateText({ model: openai.responses('hermes-agent'), maxRetries: 0, tools: { get_weather: getWeather },
      messages: [...first, ...r.responseMessages, { role: 'user', content: 'follow-up: thanks' }] });
    return { ...plain(r), executed: [...executed], steps: r.steps.length, sent: sentSteps,
      followUp: { text: next.text, sent: [...sent] },
      stepFinish: r.steps.map((s) => s.finishReason), toolCalls: r.steps.flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, input: c.input }))),
      toolResults: r.steps.flatMap((s) => s.toolResults.map((c) => c.output)) };
  });
  await run('toolStream', async () => {
    executed.length = 0;
    sent.length = 0;
    const r = streamText({ model: openai.responses('hermes-agent'), prompt: 'weather in Paris?', maxRetries: 0,
      tools: { get_weather: getWeather }, stopWhen: stepCountIs(3) });
    const s = await streamed(r);
    return { ...s, executed: [...executed], steps: (await r.steps).length, sent: [...sent] };
  });
  await run('toolChat', async () => {
    executed.length = 0;
    const r = await generateText({ model: openai.chat('hermes-agent'), prompt: 'weather in Paris?', maxRetries: 0,
      tools: { get_weather: getWeather }, stopWhen: stepCountIs(3) });
    return { ...plain(r), executed: [...executed], steps: r.steps.length };
  });
}

// Against a reasoning upstream: the Responses model shows hermesd's
// reasoning items as reasoning parts (it reads their summary, so the
// request asks for one, as it does for OpenAI's reasoning models).
async function reasoning() {
  const model = openai.responses('hermes-agent');
  const providerOptions = { openai: { forceReasoning: true, reasoningSummary: 'auto' } };
  await run('generate', async () => {
    const r = await generateText({ model, prompt: 'hi form=think', maxRetries: 0, providerOptions });
    return { text: r.text, reasoningText: r.reasoningText, content: r.content.map((c) => c.type),
      reasoningTokens: r.usage.outputTokenDetails ? r.usage.outputTokenDetails.reasoningTokens : r.usage.reasoningTokens };
  });
  await run('stream', async () => {
    const result = streamText({ model, prompt: 'hi form=reasoning', maxRetries: 0, providerOptions });
    let reasoningText = '';
    const parts = [];
    for await (const p of result.fullStream) {
      if (parts[parts.length - 1] !== p.type) parts.push(p.type);
      if (p.type === 'reasoning-delta') reasoningText += p.text;
    }
    return { parts, reasoningText, text: await result.text };
  });
  // Stateless (store: false), the SDK asks for encrypted content and sends
  // the reasoning item back with it on the next turn.
  await run('stateless', async () => {
    const opts = { openai: { ...providerOptions.openai, store: false } };
    const first = [{ role: 'user', content: 'hi form=reasoning_content' }];
    const a = await generateText({ model, messages: first, maxRetries: 0, providerOptions: opts });
    sent.length = 0;
    const b = await generateText({ model, maxRetries: 0, providerOptions: opts,
      messages: [...first, ...a.response.messages, { role: 'user', content: 'again form=think' }] });
    return { first: a.reasoningText, second: b.reasoningText, text: b.text, sent: [...sent] };
  });
}

const mode = process.argv[2];
if (mode === 'offline') await offline();
else if (mode === 'tools') await tools();
else if (mode === 'reasoning') await reasoning();
else throw new Error('mode must be offline, tools or reasoning');
process.stdout.write(JSON.stringify(out) + '\n');
