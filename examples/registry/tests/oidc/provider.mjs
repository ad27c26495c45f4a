// The OpenID provider of the OIDC login tests: oauth2-mock-server (a real OAuth 2 / OpenID
// Connect server for tests: discovery document, JWKS, token endpoint, RS256 keys) on a free port
// of 127.0.0.1. It prints "listening <issuer URL>" once ready. The token endpoint's
// client_credentials grant takes two extra form fields: `claims`, a JSON object merged into the
// token (sub, aud, repository, groups, …), and `expired=true`, which dates the token an hour
// past its expiry.
import { OAuth2Server } from 'oauth2-mock-server';

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.service.on('beforeTokenSigning', (token, req) => {
  const body = req.body || {};
  if (body.claims) Object.assign(token.payload, JSON.parse(body.claims));
  if (body.expired === 'true') {
    const now = Math.floor(Date.now() / 1000);
    token.payload.iat = now - 7200;
    token.payload.nbf = now - 7200;
    token.payload.exp = now - 3600;
  }
});
await server.start(0, '127.0.0.1');
server.issuer.url = `http://127.0.0.1:${server.address().port}`;
console.log(`listening ${server.issuer.url}`);
process.on('SIGTERM', async () => {
  await server.stop();
  process.exit(0);
});
