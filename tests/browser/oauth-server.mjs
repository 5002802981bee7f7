// A real OAuth2 authorization server (oauth2-mock-server) on loopback, for
// the connect-page end-to-end test. tests/run starts it and exports its URL.
// Usage: node oauth-server.mjs <port>   (prints "listening <url>" when ready)
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2] ?? 0);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
await server.start(port, '127.0.0.1');
console.log(`listening ${server.issuer.url}`);

const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
