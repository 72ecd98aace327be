"""Validates the agent event fixtures against docs/schemas/agent-event.schema.json with the
`jsonschema` package and prints one JSON line per case: {"name", "valid", "error"}. A JSON
Lines body is valid when each non-empty line is a valid event ($defs/event). Used by crates/sextant/tests/agent_events.rs
to prove the published schema and the server agree."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1], encoding="utf-8"))
validator = jsonschema.Draft202012Validator(schema)
# A JSON Lines body holds one event per line, so its lines are checked against $defs/event.
line_validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/event", "$defs": schema["$defs"]})
for path in sys.argv[2:]:
    for raw in open(path, encoding="utf-8"):
        if not raw.strip():
            continue
        case = json.loads(raw)
        if case["content_type"] == "ndjson":
            lines = [json.loads(l) for l in case["body"].splitlines() if l.strip()]
            errors = [e for d in lines for e in line_validator.iter_errors(d)]
        else:
            errors = list(validator.iter_errors(case["body"]))
        print(json.dumps({"name": case["name"], "valid": not errors,
                          "error": errors[0].message[:200] if errors else None}))
