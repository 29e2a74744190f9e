// A real OpenID provider (the `oidc-provider` package) for Sentinel's login tests.
//
// Listens on an ephemeral 127.0.0.1 port (OIDC_PORT to choose one) and prints
// "listening <issuer>". The first request must be POST /setup with a JSON body
//   {"clients": [client metadata...], "accounts": {id: claims}, "idTokenTtl": seconds}
// (so the clients' redirect URIs can name a server started after this one); the provider
// answers every request after that.
//
// The interaction step signs in the account named by the authorization request's login_hint,
// with no form: the tests drive the browser steps over HTTP.
import http from 'node:http';
import Provider from 'oidc-provider';

function start(issuer, { clients = [], accounts = {}, idTokenTtl = 3600 }) {
  const provider = new Provider(issuer, {
    clients,
    // xms_edov: Entra's "email domain owner verified" optional claim.
    claims: { openid: ['sub'], email: ['email', 'email_verified', 'xms_edov'], profile: ['name'] },
    // Put the requested claims in the ID token itself, as Google and Entra do.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['sentinel-tests'] },
    ttl: { IdToken: idTokenTtl },
    async findAccount(ctx, id) {
      const claims = accounts[id];
      if (!claims) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...claims }; } };
    },
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
  });

  provider.use(async (ctx, next) => {
    if (ctx.path.startsWith('/interaction/')) {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      const account = details.params.login_hint;
      if (!account || !accounts[account]) {
        ctx.status = 400;
        ctx.body = 'unknown login_hint';
        return;
      }
      const redirectTo = await provider.interactionResult(
        ctx.req, ctx.res, { login: { accountId: account } }, { mergeWithLastSubmission: false },
      );
      ctx.status = 303;
      ctx.redirect(redirectTo);
      return;
    }
    await next();
  });

  return provider.callback();
}

let handler = null;
const server = http.createServer((req, res) => {
  if (handler) return handler(req, res);
  if (req.method !== 'POST' || req.url !== '/setup') {
    res.writeHead(503).end('not set up');
    return;
  }
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    try {
      handler = start(issuer, JSON.parse(body));
      res.writeHead(204).end();
    } catch (err) {
      res.writeHead(400).end(String(err));
    }
  });
});
let issuer = '';
server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  console.log(`listening ${issuer}`);
});
