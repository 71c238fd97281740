#!/usr/bin/env python3
"""Writes the seed corpus of one fuzz target from the repository's fixtures and tests.

    python3 fuzz/seeds.py TARGET OUT_DIR

Seeds are named by the SHA-1 of their content, so running it again over a corpus that
libFuzzer has grown adds nothing twice. Committed seeds in fuzz/seeds/TARGET/ are copied too.
"""

import glob
import hashlib
import json
import os
import re
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def path(*parts):
    return os.path.join(ROOT, *parts)


def read(name):
    with open(path(name), encoding="utf-8") as f:
        return f.read()


def items(pattern):
    """Every item of the JSON arrays in the files matching `pattern` (a lone object counts as one)."""
    for name in sorted(glob.glob(path(pattern))):
        try:
            value = json.loads(read(name))
        except ValueError:
            continue
        for item in value if isinstance(value, list) else [value]:
            yield item


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def rust_json_values(text):
    """The JSON values written as `json!(...)` in Rust source (numeric suffixes, `_` separators
    and trailing commas removed); the ones that are not plain JSON are skipped."""
    values, i = [], 0
    while (i := text.find("json!(", i)) >= 0:
        j, depth = i + 6, 1
        while depth and j < len(text):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        body = text[i + 6 : j - 1]
        body = re.sub(r"(\d)_(?=\d)", r"\1", body)
        body = re.sub(r"(\d)(u64|i64|f64|u32|i32)\b", r"\1", body)
        body = re.sub(r",\s*([\]}])", r"\1", body)
        try:
            values.append(json.loads(body))
        except ValueError:
            pass
        i = j
    return values


def template_patterns():
    """The template's filter patterns, its `${...}` parameters given plausible values."""
    values = {"EntityTypeAttribute": "entityType"}
    patterns = []
    for match in re.finditer(r"'(\{\"eventName\".*?)'", read("pipes/template.yaml")):
        text = re.sub(
            r"\$\{(\w+)\}",
            lambda m: values.get(m.group(1), m.group(1).replace("EntityType", "").upper()),
            match.group(1),
        )
        try:
            patterns.append(json.loads(text))
        except ValueError:
            pass
    return patterns


def enrich_batch():
    for name in sorted(glob.glob(path("fixtures/*/*.input.json"))) + [path("fixtures/single-table/stream.json")]:
        with open(name, "rb") as f:
            yield f.read()
    yield b"[]"


def event_pattern():
    records = [r for r in items("fixtures/*/*.input.json") if isinstance(r, dict)]
    values = rust_json_values(read("pipes/src/filter/tests.rs"))
    # A test's pattern is followed by the events it must and must not match.
    for i, value in enumerate(values):
        if isinstance(value, dict):
            yield "\n".join(compact(v) for v in values[i : i + 5]).encode()
    for raw in re.findall(r'r#"(\{.*?\})"#', read("pipes/src/filter/tests.rs")):
        yield raw.encode()
    for pattern in template_patterns():
        yield "\n".join([compact(pattern)] + [compact(r) for r in records[:: max(1, len(records) // 6)]]).encode()


def template():
    yield read("pipes/template.yaml").encode()
    # The template with each parameter that has allowed values set to its last one.
    text = read("pipes/template.yaml")
    overrides = []
    for name, body in re.findall(r"\n  (\w+):\n((?:    .*\n)+)", text.split("\nConditions:")[0]):
        allowed = re.search(r"AllowedValues: \[([^\]]*)\]", body)
        if allowed:
            value = allowed.group(1).split(",")[-1].strip().strip("'\"")
            overrides.append(f"{name}={value}")
    yield (text + "\0" + "\n".join(overrides)).encode()
    small = re.search(r'const SMALL: &str = r#"(.*?)"#;', read("pipes/src/template/tests.rs"), re.S)
    if small:
        yield small.group(1).encode()
        yield (small.group(1) + "\0Stage=prod\nNames=x,y,z").encode()
    fragments = [read(f"pipes/src/scaffold/templates/pipe-{part}.yaml") for part in ("parameters", "conditions", "resources", "outputs")]
    filled = lambda t: t.replace("{{Resource}}", "Allergy").replace("{{name}}", "allergy").replace("{{RESOURCE}}", "ALLERGY")
    for fragment in fragments:
        yield filled(fragment).encode()
    yield filled("Parameters:\n" + fragments[0] + "\nConditions:\n" + fragments[1] + "\nResources:\n" + fragments[2]).encode()


def healthlake_envelope():
    for item in items("fixtures/*/*.expected.json"):
        yield compact(item).encode()
    yield b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","expression":["Patient.gender"],"diagnostics":"bad"}]}'
    yield b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"structure","location":["Patient.name[0].where(use=\'x\')"],"details":{"text":"t"}}]}'
    yield b'{"message":"User is not authorized"}'


def state_files():
    states = [b'{"file":"100"}', b'{"file":"0","shardId-1":"7"}', b"{}", b""]
    inputs = sorted(glob.glob(path("fixtures/*/*.input.json")))[:12]
    for n, name in enumerate(inputs):
        with open(name, "rb") as f:
            batch = f.read()
        records = json.loads(batch)
        ndjson = "\n".join(compact(r) for r in records).encode() if isinstance(records, list) else batch
        yield states[n % len(states)] + b"\0" + batch
        yield states[(n + 1) % len(states)] + b"\0" + ndjson


def cdc_signal():
    for item in items("fixtures/healthlake-signals/*.json"):
        yield compact(item).encode()


TARGETS = {
    "enrich_batch": enrich_batch,
    "event_pattern": event_pattern,
    "template": template,
    "healthlake_envelope": healthlake_envelope,
    "state_files": state_files,
    "cdc_signal": cdc_signal,
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: seeds.py {{{'|'.join(TARGETS)}}} OUT_DIR")
    target, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    count = 0
    for seed in TARGETS[target]():
        with open(os.path.join(out, hashlib.sha1(seed).hexdigest()), "wb") as f:
            f.write(seed)
        count += 1
    committed = path("fuzz", "seeds", target)
    if os.path.isdir(committed):
        for name in os.listdir(committed):
            shutil.copy(os.path.join(committed, name), out)
            count += 1
    print(f"{target}: {count} seeds into {out}")


if __name__ == "__main__":
    main()
