// A real OpenID provider (the `oidc-provider` package) for Sentinel's login tests.
//
// Environment:
//   OIDC_PORT      port to listen on (127.0.0.1)
//   OIDC_CLIENTS   JSON array of client metadata (client_id, client_secret, redirect_uris, ...)
//   OIDC_ACCOUNTS  JSON object: account id -> claims (email, email_verified, name)
//   OIDC_ID_TOKEN_TTL  ID-token lifetime in seconds (default 3600)
//
// The interaction step signs in the account named by the authorization request's login_hint,
// with no form: the tests drive the browser steps over HTTP. Prints "listening <issuer>".
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 0);
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]');
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');
const idTokenTtl = Number(process.env.OIDC_ID_TOKEN_TTL || 3600);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
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

http.createServer(provider.callback()).listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
