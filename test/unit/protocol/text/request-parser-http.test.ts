/**
 * RequestParser and HTTP request lines: a browser or an SSRF-able web app
 * that reaches a memcached port sends `POST / HTTP/1.1`, headers and a body.
 * memcached closes on such a line (an unknown command whose last token starts
 * with "HTTP/") before any of it runs as a command; so does memgate.
 */
import { describe, it } from 'vitest';
import { described as r, runParserFixture, type ParserFixture } from '../../../helpers/splits.js';

const fixtures: ParserFixture[] = [
  {
    name: 'ends the stream silently on a POST request line, before its body runs as commands',
    bytes: 'POST / HTTP/1.1\r\nset pwned 0 0 1\r\nx\r\n',
    expected: [],
    fatal: '',
  },
  { name: 'ends the stream on a GET request line', bytes: 'GET / HTTP/1.0\r\nmn\r\n', expected: [], fatal: '' },
  { name: 'ends the stream on PUT', bytes: 'PUT /x HTTP/1.1\n', expected: [], fatal: '' },
  { name: 'ends the stream on HEAD', bytes: 'HEAD / HTTP/1.1\r\n', expected: [], fatal: '' },
  { name: 'ends the stream on OPTIONS', bytes: 'OPTIONS * HTTP/1.1\r\n', expected: [], fatal: '' },
  { name: 'ends the stream on any unknown word before HTTP/2', bytes: 'FOO bar HTTP/2\r\n', expected: [], fatal: '' },
  { name: 'ends the stream on a bare HTTP/1.1 line', bytes: 'HTTP/1.1\r\n', expected: [], fatal: '' },
  {
    name: 'answers the requests before the HTTP line, then ends the stream',
    bytes: 'mn\r\nDELETE /k HTTP/1.1\r\nmn\r\n',
    expected: [r({ cmd: 'mn' })],
    fatal: '',
  },
  {
    name: 'leaves a lowercase get with an HTTP-looking key alone',
    bytes: 'get / HTTP/1.1\r\n',
    expected: [r({ cmd: 'get', keys: ['/', 'HTTP/1.1'] })],
  },
  {
    name: 'answers ERROR to an unknown command whose last token only looks like HTTP',
    bytes: 'FOO HTTPx\r\nFOO HTTP/1 x\r\nmn\r\n',
    expected: [r({ cmd: null, error: 'ERROR' }), r({ cmd: null, error: 'ERROR' }), r({ cmd: 'mn' })],
  },
];

describe('RequestParser: HTTP request lines', () => {
  for (const f of fixtures) it(f.name, () => runParserFixture(f));
});
