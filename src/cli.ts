/**
 * Entry point: parse → validate → start → wait for a signal.
 * Exit codes: 0 clean shutdown, 1 runtime failure, 2 invalid configuration.
 */
import { helpText, parseArgs } from './config.js';
import { ListenError, createLogger, startProxy } from './proxy.js';
import { VERSION } from './version.js';


async function main(): Promise<number> {
  const parsed = parseArgs(process.argv.slice(2));
  if (parsed.kind === 'help') {
    process.stdout.write(`${helpText()}\n`);
    return 0;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`k8s-api-proxy ${VERSION}\n`);
    return 0;
  }
  if (parsed.kind === 'invalid') {
    process.stderr.write(`k8s-api-proxy: invalid configuration:\n${parsed.errors.map((e) => `  ${e}`).join('\n')}\n`);
    return 2;
  }
  const logger = createLogger(parsed.config.logLevel);
  // Listen for signals from the start: a SIGTERM during startup shuts down cleanly too.
  const signal = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  let proxy;
  try {
    proxy = await startProxy(parsed.config, logger);
  } catch (err) {
    if (err instanceof ListenError) {
      process.stderr.write(`k8s-api-proxy: invalid configuration:\n  ${err.message}\n`);
      return 2;
    }
    logger.fatal({ err }, 'startup failed');
    return 1;
  }
  const received = await signal;
  const force = (): void => {
    logger.warn('second signal during shutdown: exiting without draining');
    process.exit(1);
  };
  process.once('SIGTERM', force);
  process.once('SIGINT', force);
  await proxy.shutdown(received);
  return 0;
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`k8s-api-proxy: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
