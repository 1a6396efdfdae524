/**
 * The README example as a function (main.ts runs it; the unit test calls it): a handful of
 * orders on the in-memory transport, narrated, then the consistency checker's verdict.
 */
import { orderSpec } from './catalog.js';
import { checkUntilConsistent, formatReport, type ConsistencyReport } from './checker.js';
import { parsePrometheus, sumOf, type Otel } from './infra/otel.js';
import { createRuntime, type StoreKind, type TransportKind } from './infra/runtime.js';
import type { PlaceOrderInput } from './services/orders.js';
import { startShop } from './system.js';
import { color, consoleStory, type Story } from './story.js';

/**
 * The orders of the story: one goes through, one is out of stock, one card is declined, one is
 * too big to ship (the pivot fails after the charge), and a last one goes through.
 */
export function storyOrders(): PlaceOrderInput[] {
  const big = orderSpec(2).order;
  return [
    orderSpec(0).order,
    orderSpec(14).order,
    orderSpec(17).order,
    { ...big, orderId: 'o-1099', qty: 6, amountCents: (big.amountCents / big.qty) * 6 },
    orderSpec(1).order,
  ];
}

export async function runExample(
  options: {
    write?: (line: string) => void;
    story?: Story;
    /** @default 'memory' */
    transport?: TransportKind;
    /** `postgres`: saga log, journal and dedupe stores in PostgreSQL. @default 'default' */
    store?: StoreKind;
    /** Prefix of the run's topics, queues and keys on a real broker. @default a new one */
    prefix?: string;
    /** The installed OpenTelemetry SDK (`--otel`): the run ends with what its metrics say. */
    otel?: Otel;
  } = {},
): Promise<ConsistencyReport> {
  const write = options.write ?? ((line: string) => console.log(line));
  const story = options.story ?? consoleStory(write);
  const transport = options.transport ?? 'memory';
  const runtime = await createRuntime({
    transport,
    ...(options.store ? { store: options.store } : {}),
    prefix: options.prefix ?? `example-${Date.now().toString(36)}`,
  });
  write(
    color.bold(
      `Backtrack order saga: orders → inventory → payments → shipping (${transport === 'memory' ? 'in-memory' : transport} transport${runtime.store === 'postgres' ? ', PostgreSQL store' : ''})`,
    ),
  );
  write(
    color.dim('Each order runs the place-order saga; a failed step undoes the steps before it.'),
  );
  await options.otel?.monitor(runtime);
  const shop = await startShop(runtime, { story, stockFor: 10 });
  try {
    for (const order of storyOrders()) await shop.orders.place(order);
    write('');
    write(color.bold('Consistency check (reads every service’s own state):'));
    const report = await checkUntilConsistent(runtime.states, { timeoutMs: 5_000 });
    write(`  ${formatReport(report)}`);
    if (options.otel) await writeMetrics(options.otel, write);
    return report;
  } finally {
    await shop.stop();
    await runtime.destroy();
    await runtime.close();
  }
}

/** What the Prometheus endpoint says about the run (the numbers a dashboard shows). */
async function writeMetrics(otel: Otel, write: (line: string) => void): Promise<void> {
  const samples = parsePrometheus(await otel.scrape());
  const ended = (status: string) =>
    sumOf(samples, 'backtrack_saga_ended_total', { backtrack_saga_status: status });
  write('');
  write(color.bold(`Metrics (${otel.metricsUrl}):`));
  write(
    `  sagas started ${sumOf(samples, 'backtrack_saga_started_total')}, completed ${ended('completed')}, compensated ${ended('compensated')}, stuck now ${sumOf(samples, 'backtrack_saga_stuck')}`,
  );
  write(
    `  messages processed ${sumOf(samples, 'backtrack_consumer_messages_total')}, published ${sumOf(samples, 'backtrack_publisher_messages_total')}, dead letters ${sumOf(samples, 'backtrack_consumer_dead_letters_total')}`,
  );
}
