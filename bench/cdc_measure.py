#!/usr/bin/env python3
"""Helper of bench/cdc.sh (change capture against the HealthLake stand-in and moto).

  cdc_measure.py scenario --out R.json ...  one measured run: moto reset and set up as the
      template names it (ChangeCaptureQueue + dead-letter queue, the CDC bus with a rule to a
      queue, the de-dup table), the stand-in reset and its signals sent to the queue, N Patient
      writes (PUT, signed), `fhir-pipes run --pipe HealthLakeChangePipe` with the shipped
      hydrator and publisher (--follow while the writes happen, or after them), then the bus
      queue read (SentTimestamp), the store's request log and the pipe's summary.
  cdc_measure.py lambda-inputs ...          a 100-signal hydrator batch (the store's signals in
      the shape Pipes hands them over), the hydrator's answer to it (the publisher's batch, got
      through bench/lambda_invoke.py's Runtime API) and fresh de-dup tables for the publisher.
  cdc_measure.py table R.json ... L.json    the summary table.

Needs botocore/boto3 (the tests' venv, which has moto). Talks to 127.0.0.1 only.
"""
import argparse, datetime, hashlib, json, os, random, signal, statistics, subprocess, sys, threading, time, uuid
import http.client, urllib.parse, urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
QUEUE, DLQ = "ChangeCaptureQueue", "ChangeCaptureDeadLetterQueue"
BUS, TABLE = "fhir-pipes-local-healthlake-changes", "ChangeCaptureDedupTable"
BUS_QUEUE = BUS + "-events"


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def client(service, moto):
    return boto3.client(service, endpoint_url=moto, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def admin(store, method, route, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{store}/_admin/{route}", data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read() or b"null")


# ---------------------------------------------------------------- moto set-up

def setup_moto(moto, visibility_timeout):
    urllib.request.urlopen(urllib.request.Request(f"{moto}/moto-api/reset", method="POST"), timeout=60).read()
    sqs, events, ddb = client("sqs", moto), client("events", moto), client("dynamodb", moto)
    dlq = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=QUEUE, Attributes={
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    bus_queue = sqs.create_queue(QueueName=BUS_QUEUE)["QueueUrl"]
    bus_queue_arn = sqs.get_queue_attributes(QueueUrl=bus_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name=BUS)
    events.put_rule(Name=BUS + "-to-queue", EventBusName=BUS, EventPattern=json.dumps({"source": ["fhir-pipes.healthlake"]}))
    events.put_targets(Rule=BUS + "-to-queue", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": bus_queue_arn}])
    create_dedup_table(ddb, TABLE)
    return queue, bus_queue


def create_dedup_table(ddb, name):
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "idempotencyKey", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "idempotencyKey", "KeyType": "HASH"}])
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"AttributeName": "expiresAt", "Enabled": True})


def queue_depth(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                               "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def read_all(sqs, url):
    """Every message of the queue with its SentTimestamp (received once, hidden for an hour)."""
    out = []
    empty = 0
    while empty < 2:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=3600,
                                  AttributeNames=["SentTimestamp"], WaitTimeSeconds=0).get("Messages", [])
        empty = empty + 1 if not got else 0
        out.extend((int(m["Attributes"]["SentTimestamp"]), json.loads(m["Body"])) for m in got)
    return out


# ---------------------------------------------------------------- writes

FAMILIES = ["Okafor", "Lindqvist", "Haddad", "Moreau", "Tanaka", "Oyelaran", "Kowalczyk", "Brennan", "Nakamura",
            "Alvarez-Ruiz", "Fitzgerald", "Papadopoulos", "Van der Berg", "O'Neill", "Nguyen", "Mbeki", "Rossi"]
GIVEN = ["Ada", "Tomasz", "Leila", "Kwame", "Ines", "Haruto", "Maeve", "Omar", "Sigrid", "Rafael", "Chidi", "Yuki",
         "Elif", "Mateo", "Priya", "Jonas", "Amara", "Lucien"]
CITIES = [("Springfield", "IL", "627"), ("Portland", "OR", "972"), ("Austin", "TX", "787"), ("Albany", "NY", "122"),
          ("Madison", "WI", "537"), ("Boise", "ID", "837")]


def patient(rng, resource_id):
    """A made-up Patient; fields, repetitions and sizes vary with the seed."""
    p = {"resourceType": "Patient", "id": resource_id, "active": rng.random() < 0.9,
         "gender": rng.choice(["male", "female", "other", "unknown"]),
         "birthDate": f"{rng.randint(1930, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
         "name": [{"use": "official", "family": rng.choice(FAMILIES),
                   "given": rng.sample(GIVEN, rng.randint(1, 3))}],
         "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.1", "value": f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"}]}
    if rng.random() < 0.3:
        p["name"].append({"use": "maiden", "family": rng.choice(FAMILIES)})
    if rng.random() < 0.8:
        city, state, zip3 = rng.choice(CITIES)
        p["address"] = [{"use": "home", "line": [f"{rng.randint(1, 9999)} {rng.choice(['Oak', 'Elm', 'Main', 'Cedar', 'Lake'])} St"],
                         "city": city, "state": state, "postalCode": f"{zip3}{rng.randint(10, 99)}", "country": "US"}]
    telecom = []
    if rng.random() < 0.7:
        telecom.append({"system": "phone", "value": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}", "use": rng.choice(["home", "mobile", "work"])})
    if rng.random() < 0.5:
        telecom.append({"system": "email", "value": f"patient{rng.randint(1, 10**6)}@example.org"})
    if telecom:
        p["telecom"] = telecom
    if rng.random() < 0.2:
        p["deceasedBoolean"] = False
    if rng.random() < 0.25:
        p["communication"] = [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": rng.choice(["en", "es", "fr", "de", "ja"])}]}}]
    return p


def write_all(store, datastore, count, concurrency, prefix, seed, access_key, secret):
    """PUTs `count` new Patients, `concurrency` keep-alive connections; returns (first start, last end, statuses)."""
    host = urllib.parse.urlparse(store).netloc
    credentials = Credentials(access_key, secret)
    rng = random.Random(seed)
    bodies = [json.dumps(patient(rng, f"{prefix}-{n:05d}")).encode() for n in range(count)]
    next_index = iter(range(count))
    lock = threading.Lock()
    first = [None]
    failures = []

    def worker():
        connection = http.client.HTTPConnection(host, timeout=60)
        while True:
            with lock:
                n = next(next_index, None)
                if first[0] is None and n is not None:
                    first[0] = time.time()
            if n is None:
                break
            url = f"{store}/datastore/{datastore}/r4/Patient/{prefix}-{n:05d}"
            request = AWSRequest(method="PUT", url=url, data=bodies[n], headers={"content-type": "application/fhir+json"})
            SigV4Auth(credentials, "healthlake", REGION).add_auth(request)
            connection.request("PUT", urllib.parse.urlparse(url).path, body=bodies[n], headers=dict(request.headers.items()))
            answer = connection.getresponse()
            answer.read()
            if answer.status >= 300:
                failures.append(answer.status)
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    if failures:
        sys.exit(f"{len(failures)} writes failed, e.g. HTTP {failures[0]}")
    return first[0], time.time()


# ---------------------------------------------------------------- peak RSS of the pipe's Lambda processes

class RssSampler(threading.Thread):
    """Samples VmHWM of the hydrator and publisher processes the pipe started (every 0.2 s)."""

    def __init__(self, root_pid):
        super().__init__(daemon=True)
        self.root, self.peak, self.stop = root_pid, {}, threading.Event()

    def run(self):
        while not self.stop.wait(0.2):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/status") as f:
                        status = dict(line.split(":", 1) for line in f if ":" in line)
                    if int(status["PPid"]) != self.root:
                        continue
                    name = status["Name"].strip()  # at most 15 characters
                    name = next((full for full in ("healthlake-hydrator", "healthlake-publisher") if full.startswith(name)), name)
                    hwm = int(status["VmHWM"].split()[0])
                    self.peak[name] = max(self.peak.get(name, 0), hwm)
                except (OSError, KeyError, ValueError):
                    pass


# ---------------------------------------------------------------- one scenario

def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def epoch_ms(instant):
    return datetime.datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp() * 1000


PIPE = []  # the running `fhir-pipes run`, stopped with its Lambdas if this script is stopped


def stop_pipe(signum, _frame):
    for pipe in PIPE:
        try:
            os.killpg(pipe.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(f"stopped by signal {signum}")


def scenario(a):
    signal.signal(signal.SIGTERM, stop_pipe)
    signal.signal(signal.SIGINT, stop_pipe)
    store, moto = a.store, a.moto
    sqs = client("sqs", moto)
    log(f"== {a.name}: {a.writes} writes, ids {a.ids}, {a.mode}, BatchSize {a.batch_size}, window {a.window} s")
    queue, bus_queue = setup_moto(moto, 360)
    admin(store, "POST", "reset")
    admin(store, "POST", "signals", {"cloudTrail": {"resourceId": a.ids, "refusedWrites": False}, "sqsQueueUrl": queue})
    work = a.work
    summary_path = os.path.join(work, f"{a.name}-summary.json")
    command = [a.fhir_pipes, "run", "--pipe", "HealthLakeChangePipe", "--quiet", "--endpoint-url", moto,
               "-p", "HealthLakeChangeCapture=Enabled", "-p", f"HealthLakeDatastoreEndpoint={store}/datastore/{a.datastore}/r4/",
               "-p", f"ChangeCaptureBatchSize={a.batch_size}", "-p", f"ChangeCaptureBatchingWindowInSeconds={a.window}",
               "--enricher-binary", a.hydrator, "--target-binary", a.publisher,
               "--dead-letter", os.path.join(work, f"{a.name}-dead.ndjson"), "--summary-json", summary_path]
    command += [arg for p in a.param for arg in ("-p", p)]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=a.access_key, AWS_SECRET_ACCESS_KEY=a.secret, AWS_REGION=REGION)
    stderr = open(os.path.join(work, f"{a.name}-pipe.log"), "w")
    deadline_s = a.timeout
    result = {"name": a.name, "writes": a.writes, "ids": a.ids, "mode": a.mode, "batchSize": a.batch_size,
              "window": a.window, "concurrency": a.concurrency, "parameters": a.param}

    if a.mode == "follow":
        started = time.time()
        pipe = subprocess.Popen(command + ["--follow"], env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        PIPE.append(pipe)
        sampler = RssSampler(pipe.pid)
        sampler.start()
        time.sleep(2)  # the pipe polls the queue; its Lambdas start with the first batch
        first, last_write = write_all(store, a.datastore, a.writes, a.concurrency, a.name, a.seed, a.access_key, a.secret)
        log(f"writes: {a.writes / (last_write - first):.0f}/s ({last_write - first:.1f} s)")
        while True:
            published, _ = queue_depth(sqs, bus_queue)
            waiting = sum(queue_depth(sqs, queue))
            if (published >= a.writes and waiting == 0) or pipe.poll() is not None:
                break
            if time.time() - started > deadline_s:
                log(f"timeout: {published} events on the bus, {waiting} signals still queued")
                result["timedOut"] = True
                break
            time.sleep(0.5)
        time.sleep(1)
        os.killpg(pipe.pid, signal.SIGTERM)
        try:
            pipe.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(pipe.pid, signal.SIGKILL)
            pipe.wait()
        sampler.stop.set()
        result["pipeExit"] = "stopped by the script (--follow)"
    else:
        first, last_write = write_all(store, a.datastore, a.writes, a.concurrency, a.name, a.seed, a.access_key, a.secret)
        log(f"writes: {a.writes / (last_write - first):.0f}/s ({last_write - first:.1f} s)")
        result["requestsBeforePipe"] = len(admin(store, "GET", "requests"))
        queued, _ = queue_depth(sqs, queue)
        result["signalsQueued"] = queued
        t0 = time.time()
        pipe = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        PIPE.append(pipe)
        sampler = RssSampler(pipe.pid)
        sampler.start()
        try:
            code = pipe.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            os.killpg(pipe.pid, signal.SIGKILL)
            pipe.wait()
            code = "timeout"
            result["timedOut"] = True
        sampler.stop.set()
        result["pipeWallSeconds"] = round(time.time() - t0, 3)
        result["pipeStartEpoch"] = t0
        result["pipeExit"] = code
        if os.path.exists(summary_path):
            result["summary"] = json.load(open(summary_path))
    stderr.close()
    if result["pipeExit"] not in (0, "stopped by the script (--follow)") or (a.mode == "follow" and pipe.returncode not in (-signal.SIGTERM, -signal.SIGKILL)):
        log(f"fhir-pipes run ended with {pipe.returncode}:\n" + open(stderr.name).read()[-3000:])
    result["writeSeconds"] = round(last_write - first, 3)
    result["writesPerSecond"] = round(a.writes / (last_write - first), 1)
    result["lambdaPeakRssKiB"] = sampler.peak

    # What reached the bus.
    messages = read_all(sqs, bus_queue)
    keys = [m[1]["detail"].get("metadata", {}).get("idempotencyKey") for m in messages]
    lags, ids = [], set()
    for sent, event in messages:
        entity = event["detail"].get("details", {}).get("entity", {})
        updated = entity.get("meta", {}).get("lastUpdated")
        if updated:
            lags.append(sent - epoch_ms(updated))
        if entity.get("id"):
            ids.add(entity["id"])
    sent_times = [m[0] for m in messages]
    result["events"] = len(messages)
    result["distinctResources"] = len(ids)
    result["duplicateKeys"] = len(keys) - len(set(keys))
    result["eventTypes"] = dict(sorted(collections_counter(m[1]["detail-type"] for m in messages).items()))
    dead = sum(queue_depth(sqs, sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]))
    result["signalsLeft"], result["deadLetterQueue"] = sum(queue_depth(sqs, queue)), dead
    if messages:
        last_event = max(sent_times) / 1000
        result["firstWriteToLastEventSeconds"] = round(last_event - first, 3)
        result["endToEndEventsPerSecond"] = round(len(messages) / (last_event - first), 1)
        result["busSpanSeconds"] = round((max(sent_times) - min(sent_times)) / 1000, 3)
        if "pipeStartEpoch" in result:
            span = last_event - result["pipeStartEpoch"]
            result["pipeStartToLastEventSeconds"] = round(span, 3)
    if lags:
        result["lagMs"] = {"p50": round(percentile(lags, 50)), "p99": round(percentile(lags, 99)),
                           "min": round(min(lags)), "max": round(max(lags)), "n": len(lags)}

    # What the pipe asked the store.
    requests = admin(store, "GET", "requests")[result.get("requestsBeforePipe", 0):]
    reads = [r for r in requests if r["method"] == "GET" and r.get("id")]
    pages = [r for r in requests if r["method"] == "GET" and not r.get("id") and r.get("query")]
    starts = [r for r in pages if "page=" not in r["query"]]
    result["store"] = {
        "reads": len(reads), "distinctRead": len({(r["resourceType"], r["id"]) for r in reads}),
        "readsPerDistinctResource": round(len(reads) / max(1, len({(r["resourceType"], r["id"]) for r in reads})), 3),
        "readsPerWrite": round(len(reads) / a.writes, 3),
        "searches": len(starts), "searchPages": len(pages),
        "searchTypes": sorted({r["resourceType"] for r in starts if r.get("resourceType")}),
        "non2xx": sum(1 for r in requests if r["status"] >= 300 and r["method"] == "GET"),
    }
    batches = result.get("summary", {}).get("batches")
    if batches:
        types = max(1, len(result["store"]["searchTypes"]))
        result["store"]["searchesPerTypePerBatch"] = round(len(starts) / types / batches, 3)
        result["store"]["pagesPerSearch"] = round(len(pages) / max(1, len(starts)), 2)
    json.dump(result, open(a.out, "w"), indent=2)
    log(json.dumps({k: result.get(k) for k in ("events", "writesPerSecond", "endToEndEventsPerSecond", "firstWriteToLastEventSeconds", "lagMs", "store", "pipeWallSeconds", "pipeStartToLastEventSeconds", "summary", "lambdaPeakRssKiB")}))
    if result.get("timedOut") or result["events"] < a.writes:
        log(f"{a.name}: {result['events']} events for {a.writes} writes")


def collections_counter(items):
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


# ---------------------------------------------------------------- Lambda inputs

def lambda_inputs(a):
    """The hydrator's batch: `size` of the store's signals as Pipes hands SQS messages over; the
    publisher's batch: the hydrator's answer to it; `tables` fresh de-dup tables."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.dont_write_bytecode = True
    import lambda_invoke
    from http.server import ThreadingHTTPServer

    signals = admin(a.store, "GET", "signals")["events"][: a.size]
    if len(signals) < a.size:
        sys.exit(f"only {len(signals)} signals in the store")
    records = []
    for event in signals:
        body = json.dumps(event)
        records.append({"messageId": str(uuid.uuid4()), "receiptHandle": "bench-" + uuid.uuid4().hex, "body": body,
                        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000)),
                                       "SenderId": "AIDABENCH", "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000))},
                        "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(), "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{QUEUE}", "awsRegion": REGION})
    batch = json.dumps(records).encode()
    open(a.hydrator_event, "wb").write(batch)

    # One invocation of the hydrator through lambda_invoke's Runtime API, to keep its answer.
    api = lambda_invoke.RuntimeApi(batch, 1)
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda_invoke.handler_for(api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PATH": os.environ.get("PATH", ""), "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}",
           "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "RUST_LOG": "warn"}
    env.update(kv.split("=", 1) for kv in a.env)
    process = subprocess.Popen([a.hydrator], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = api.done.wait(timeout=120)
    process.kill()
    process.wait()
    server.shutdown()
    answers = [r for r in api.results if r[2] == "response"]
    if not finished or not answers:
        sys.exit(f"the hydrator gave no answer: {api.results[:1]}")
    events = json.loads(answers[-1][3])
    open(a.publisher_event, "wb").write(answers[-1][3])
    ddb = client("dynamodb", a.moto)
    for n in range(a.tables):
        create_dedup_table(ddb, f"BenchDedup{n}")
    log(f"hydrator batch: {len(records)} signals, {len(batch)} bytes; publisher batch: {len(events)} events, {len(answers[-1][3])} bytes")


# ---------------------------------------------------------------- table

def table(paths):
    runs, lambdas = [], {}
    for path in paths:
        data = json.load(open(path))
        if "binary" in data or isinstance(data, list):
            for item in data if isinstance(data, list) else [data]:
                lambdas.setdefault(os.path.basename(item["binary"]), []).append(item)
        else:
            runs.append(data)
    rows = []
    for r in runs:
        label = f"{r['name']} ({r['writes']} writes, ids {r['ids']}, {r['mode']}, BatchSize {r['batchSize']}, window {r['window']} s)"
        rows.append((label, "", ""))
        rows.append(("  writes to the stand-in", f"{r['writesPerSecond']:.0f}/s", f"{r['writeSeconds']:.1f} s, {r['concurrency']} connections"))
        rows.append(("  events on the bus (distinct resources, duplicate keys)", str(r["events"]), f"{r['distinctResources']}, {r['duplicateKeys']}; signals left {r['signalsLeft']}, DLQ {r['deadLetterQueue']}"))
        if "endToEndEventsPerSecond" in r:
            rows.append(("  end to end: first write → last event on the bus", f"{r['endToEndEventsPerSecond']:.0f} events/s", f"{r['firstWriteToLastEventSeconds']:.1f} s"))
        s = r.get("summary")
        if s:
            rows.append(("  pipe alone: fhir-pipes run over the queued signals", f"{s['read'] / r['pipeWallSeconds']:.0f} signals/s, {r['events'] / r['pipeWallSeconds']:.0f} events/s",
                         f"wall {r['pipeWallSeconds']:.1f} s (summary {s['elapsedSeconds']:.1f} s, {s['read']} read, {s['batches']} batches, {s['deadLettered']} dead-lettered)"))
            rows.append(("  events from the hydrator (publisher input) / on the bus", f"{s['enriched']} / {r['events']}", "the publisher de-duplicates the rest"))
            if "pipeStartToLastEventSeconds" in r:
                rows.append(("  pipe alone: process start → last event on the bus", f"{r['events'] / r['pipeStartToLastEventSeconds']:.0f} events/s", f"{r['pipeStartToLastEventSeconds']:.1f} s"))
        if "lagMs" in r:
            l = r["lagMs"]
            what = "lag meta.lastUpdated → bus (SentTimestamp)" + ("" if r["mode"] == "follow" else ", queued first")
            rows.append((f"  {what}", f"p50 {l['p50']} ms, p99 {l['p99']} ms", f"min {l['min']}, max {l['max']} ms, n {l['n']}"))
        st = r["store"]
        rows.append(("  store GETs by id per distinct resource", f"{st['readsPerDistinctResource']}", f"{st['reads']} GETs, {st['distinctRead']} resources, {st['readsPerWrite']} per write"))
        searches = f"{st.get('searchesPerTypePerBatch', '-')}"
        rows.append(("  searches per type per batch", searches, f"{st['searches']} searches {st['searchTypes']}, {st['searchPages']} pages ({st.get('pagesPerSearch', '-')} per search)"))
        if r.get("lambdaPeakRssKiB"):
            rss = ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in sorted(r["lambdaPeakRssKiB"].items()))
            rows.append(("  peak RSS in the run (VmHWM)", rss, ""))
    for name, items in lambdas.items():
        inits = [i["init_ms"] for i in items]
        firsts = [i["invocation_ms"]["first"] for i in items]
        medians = [i["invocation_ms"]["median"] for i in items]
        rss = [i["peak_rss_mib"] for i in items if i["peak_rss_mib"]]
        n = items[0]["invocations"]
        rows.append((f"{name} (Lambda, {len(items)} process(es) × {n} invocation(s), 100-signal batch)", "", ""))
        rows.append(("  init (process start → first /next)", "–".join(f"{x:.1f}" for x in (min(inits), max(inits))) + " ms", ""))
        rows.append(("  invocation, first / median", f"{min(firsts):.0f}–{max(firsts):.0f} / {min(medians):.0f}–{max(medians):.0f} ms", f"{items[0]['event_bytes']} bytes in, {items[0]['response_bytes']} out"))
        if rss:
            rows.append(("  peak RSS (VmHWM)", f"{min(rss):.1f}–{max(rss):.1f} MiB", ""))
    width = max(len(r[0]) for r in rows)
    width2 = max(len(r[1]) for r in rows)
    print("\n== Summary")
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:<{width2}}  {c}".rstrip())


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scenario")
    for name in ("--name", "--store", "--moto", "--datastore", "--work", "--out", "--fhir-pipes", "--hydrator", "--publisher",
                 "--access-key", "--secret"):
        s.add_argument(name, required=True)
    s.add_argument("--ids", choices=["shown", "hidden"], default="shown")
    s.add_argument("--mode", choices=["follow", "queued"], default="queued")
    s.add_argument("--writes", type=int, default=5000)
    s.add_argument("--batch-size", type=int, default=100)
    s.add_argument("--window", type=int, default=1)
    s.add_argument("--concurrency", type=int, default=4)
    s.add_argument("--seed", type=int, default=12)
    s.add_argument("--timeout", type=float, default=600)
    s.add_argument("--param", action="append", default=[])
    li = sub.add_parser("lambda-inputs")
    for name in ("--store", "--moto", "--hydrator", "--hydrator-event", "--publisher-event"):
        li.add_argument(name, required=True)
    li.add_argument("--size", type=int, default=100)
    li.add_argument("--tables", type=int, default=3)
    li.add_argument("--env", action="append", default=[])
    t = sub.add_parser("table")
    t.add_argument("paths", nargs="+")
    a = parser.parse_args()
    if a.command == "scenario":
        scenario(a)
    elif a.command == "lambda-inputs":
        lambda_inputs(a)
    else:
        table(a.paths)


if __name__ == "__main__":
    main()
