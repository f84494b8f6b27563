/**
 * A turn of the event loop between the statements of a long read: the embedded store runs each
 * statement on the event loop, so a whole-table read in one statement held up every other request
 * of the process (`/health` included) for as long as it took (734 ms for 20 000 histories, so a
 * page of 1 000 holds it up for ~40 ms, and a read of 100 000 is 100 statements, not 500).
 */
export const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
