/**
 * The EventStoreDB node the live suites run against, from EVENTSTORE_CONNECTION_STRING; without
 * one, `describeWithServer` skips and says so on stderr, with how to run them.
 */
export function eventStoreDbServer(suite: string): { connectionString: string; describeWithServer: jest.Describe } {
  const connectionString = process.env['EVENTSTORE_CONNECTION_STRING'] ?? '';
  if (connectionString === '') {
    process.stderr.write(
      `\nEventStoreDB ${suite} tests SKIPPED: EVENTSTORE_CONNECTION_STRING is not set.\n` +
        '  To run them, start a node, e.g. `docker run --rm -p 2113:2113 eventstore/eventstore:lts --insecure`, then\n' +
        '  `EVENTSTORE_CONNECTION_STRING="esdb://127.0.0.1:2113?tls=false" npm test`\n' +
        '  (a secure node needs a user allowed to read $all: esdb://admin:changeit@host:2113?tls=true&tlsCAFile=…).\n\n',
    );
  }
  return { connectionString, describeWithServer: connectionString === '' ? describe.skip : describe };
}
