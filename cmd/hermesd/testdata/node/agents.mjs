// The OpenAI Agents SDK for JavaScript (@openai/agents), unchanged, against
// hermesd at HERMES_BASE_URL: an agent with one function tool, run through
// the Responses model (streamed and not) and the Chat Completions model,
// in runs where hermesd's own agent also uses one of its tools. Prints one
// JSON object: case name → observations (or {error}).
import OpenAI from 'openai';
import { Agent, run, tool, OpenAIResponsesModel, OpenAIChatCompletionsModel, setTracingDisabled } from '@openai/agents';
import { z } from 'zod';

setTracingDisabled(true);
const client = new OpenAI({ baseURL: process.env.HERMES_BASE_URL, apiKey: 'unused', maxRetries: 0 });
const results = {};
// mode (argv[2]) is unused: one run covers every case.

async function runCase(name, fn) {
  try {
    results[name] = await fn();
  } catch (e) {
    results[name] = { error: String(e && e.stack || e), status: e?.status ?? 0, body: e?.error ?? null };
  }
}

const calls = [];
const getWeather = tool({
  name: 'get_weather',
  description: 'The weather in a city.',
  parameters: z.object({ city: z.string() }),
  execute: async ({ city }) => { calls.push(city); return `sunny in ${city}`; },
});

function agentWith(model) {
  return new Agent({ name: 'weather', instructions: 'Answer about the weather.', model, tools: [getWeather] });
}

// What a run produced: its items (type and, for tool items, the raw type),
// the final output, and how many times the client ran its tool.
function summary(result, before) {
  return {
    final: result.finalOutput,
    items: result.newItems.map((it) => it.type + (it.rawItem?.type ? ':' + it.rawItem.type : '') + (it.rawItem?.name ? ':' + it.rawItem.name : '')),
    clientCalls: calls.length - before,
    responses: result.rawResponses.length,
  };
}

const prompt = 'use-tools terminal then get_weather';

await runCase('responses', async () => {
  const before = calls.length;
  const result = await run(agentWith(new OpenAIResponsesModel(client, 'hermes-agent')), prompt);
  return summary(result, before);
});

await runCase('responsesStream', async () => {
  const before = calls.length;
  const result = await run(agentWith(new OpenAIResponsesModel(client, 'hermes-agent')), prompt, { stream: true });
  const events = [];
  for await (const ev of result) events.push(ev.type === 'raw_model_stream_event' ? 'raw:' + ev.data.type : ev.type);
  await result.completed;
  return { ...summary(result, before), rawEvents: [...new Set(events)] };
});

await runCase('chat', async () => {
  const before = calls.length;
  const result = await run(agentWith(new OpenAIChatCompletionsModel(client, 'hermes-agent')), prompt);
  return summary(result, before);
});

process.stdout.write(JSON.stringify(results));
