// The official MCP TypeScript SDK's client, unmodified, with an in-memory
// OAuthClientProvider, against an MCP server protected by Signet. It is
// driven by interop/mcp's Go test, which runs Signet, the MCP servers and
// Chromium: this script prints one JSON line per event on stdout and reads
// the authorization code the browser brought back as one line on stdin.
//
// Environment:
//   SERVER_A, SERVER_B  the MCP endpoints of two servers with different
//                       resource URIs; the token got for A must not open B
//   REDIRECT_URI        the loopback redirect URI the Go test listens on
//   CLIENT_ID           a client registered at Signet beforehand, returned
//                       by the provider's clientInformation(); unset, the
//                       SDK registers one (RFC 7591) or, with
//   CLIENT_METADATA_URL set, uses that client ID metadata document URL as
//                       its client_id when Signet advertises support
//   AUTH_METHOD         the token_endpoint_auth_method it registers with:
//                       none (default), or client_secret_post as the
//                       SDK's own example clients do
import readline from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const env = (name) => {
	const v = process.env[name];
	if (!v) throw new Error(`${name} is not set`);
	return v;
};
const serverA = env('SERVER_A');
const serverB = env('SERVER_B');
const redirectUri = env('REDIRECT_URI');
const clientId = process.env.CLIENT_ID;
const clientMetadataUrl = process.env.CLIENT_METADATA_URL;
const authMethod = process.env.AUTH_METHOD || 'none';

const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');

// Every request the SDK makes, so the Go test can check the discovery
// order and the parameters it sent.
const fetchLog = async (url, init) => {
	const res = await fetch(url, init);
	const method = init?.method ?? 'GET';
	let body;
	if (typeof init?.body === 'string' || init?.body instanceof URLSearchParams) body = String(init.body);
	emit('fetch', { method, url: String(url), status: res.status, body });
	return res;
};

// An OAuthClientProvider as an application writes one: everything in
// memory; the browser part is the Go test's (redirectToAuthorization).
class MemoryProvider {
	constructor({ clientInformation, tokens } = {}) {
		this._client = clientInformation;
		this._tokens = tokens;
		this.authorizationURL = undefined;
		if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
	}
	get redirectUrl() { return redirectUri; }
	get clientMetadata() {
		return {
			client_name: 'Signet MCP interop',
			redirect_uris: [redirectUri],
			grant_types: ['authorization_code', 'refresh_token'],
			response_types: ['code'],
			token_endpoint_auth_method: authMethod,
		};
	}
	clientInformation() { return this._client; }
	saveClientInformation(info) {
		this._client = info;
		emit('client', { client_id: info.client_id, auth_method: info.token_endpoint_auth_method, has_secret: Boolean(info.client_secret) });
	}
	tokens() { return this._tokens; }
	saveTokens(tokens) { this._tokens = tokens; emit('tokens', { tokens: summary(tokens) }); }
	redirectToAuthorization(url) { this.authorizationURL = url; emit('authorize', { url: String(url) }); }
	saveCodeVerifier(v) { this._verifier = v; }
	codeVerifier() { return this._verifier; }
}

const summary = (t) => ({
	access_token: t.access_token, token_type: t.token_type, expires_in: t.expires_in, scope: t.scope,
	has_refresh_token: Boolean(t.refresh_token),
});

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async () => {
	const { value, done } = await lines.next();
	if (done) throw new Error('stdin closed before the authorization code came');
	return value.trim();
};

const connect = async (url, provider) => {
	const client = new Client({ name: 'signet-interop', version: '1.0.0' });
	const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: fetchLog });
	await client.connect(transport);
	return { client, transport };
};

const whoami = async (client) => {
	const res = await client.callTool({ name: 'whoami', arguments: {} });
	return res.structuredContent;
};

async function main() {
	const provider = new MemoryProvider({ clientInformation: clientId ? { client_id: clientId } : undefined });

	// 1. No token: the server's 401 sends the SDK through RFC 9728 and
	// RFC 8414 discovery to Signet's authorization endpoint.
	const first = new StreamableHTTPClientTransport(new URL(serverA), { authProvider: provider, fetch: fetchLog });
	try {
		await new Client({ name: 'signet-interop', version: '1.0.0' }).connect(first);
		throw new Error('connected to A without a token');
	} catch (err) {
		if (!(err instanceof UnauthorizedError)) throw err;
	}
	if (!provider.authorizationURL) throw new Error('the SDK did not ask for a browser login');

	// 2. The browser comes back with a code; the SDK redeems it.
	const code = await nextLine();
	await first.finishAuth(code);
	emit('authorized');

	// 3. With the token: the tool answers.
	const a = await connect(serverA, provider);
	emit('tool', { server: 'A', result: await whoami(a.client) });

	// 4. The access token goes bad: the SDK refreshes after the server's
	// 401, once, and repeats the call.
	const before = provider.tokens();
	provider._tokens = { ...before, access_token: before.access_token + 'x' };
	emit('tool', { server: 'A', after: 'refresh', result: await whoami(a.client) });
	await a.client.close();

	// 5. The token for A at B: B refuses it, and points at its own metadata.
	const token = provider.tokens().access_token;
	const res = await fetch(serverB, {
		method: 'POST',
		headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
		body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
			params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
	});
	emit('refused', { server: 'B', status: res.status, www_authenticate: res.headers.get('www-authenticate') });

	// The SDK, holding only A's access token, goes back to Signet for a
	// token for B rather than using A's.
	const pb = new MemoryProvider({ clientInformation: provider.clientInformation(),
		tokens: { access_token: token, token_type: 'Bearer' } });
	try {
		await connect(serverB, pb);
		throw new Error('connected to B with A\'s token');
	} catch (err) {
		if (!(err instanceof UnauthorizedError)) throw err;
	}
	if (!pb.authorizationURL) throw new Error('the SDK did not ask for a login for B');
	emit('done');
	process.exit(0);
}

main().catch((err) => {
	emit('error', { message: String(err?.stack ?? err) });
	process.exit(1);
});
