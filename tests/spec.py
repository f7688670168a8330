"""Protocol v1 as written in docs/asyncapi.yaml: validate frames against the spec's payload schemas.

The tests run every frame they send and receive through :class:`ProtocolSpec`, so the server,
the clients and the document cannot drift apart:

    spec = load_spec(strict=True)
    spec.validate_server({"type": "pong", "nonce": 7})     # raises SpecViolation if not allowed

``strict`` additionally refuses fields the spec does not name. The protocol itself lets either
side add fields (they are ignored), but our own server and clients must document theirs first.
:class:`ValidatingTransport` wraps any client transport and checks both directions.
Needs the ``jsonschema`` and ``pyyaml`` packages (the test extras).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"
ASYNCAPI_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "schemas" / "asyncapi-3.0.0.json"
_BASE_URI = "https://joey-chat.invalid/asyncapi.yaml"


class SpecViolation(AssertionError):
    """A frame the spec does not allow."""


class ProtocolSpec:
    def __init__(self, doc: dict, strict: bool = False):
        from jsonschema import Draft7Validator
        from referencing import Registry
        from referencing.jsonschema import DRAFT7

        self.doc = copy.deepcopy(doc)
        self.strict = strict
        if strict:
            _close_objects(self.doc["components"]["schemas"])
        registry = Registry().with_resource(_BASE_URI, DRAFT7.create_resource(self.doc))
        # Frames the server receives come from clients; frames it sends go to them.
        self.client_messages = self._messages("receive")
        self.server_messages = self._messages("send")
        self._validators = {}
        for direction, messages in (("client", self.client_messages), ("server", self.server_messages)):
            for kind, pointer in messages.items():
                self._validators[direction, kind] = Draft7Validator({"$ref": f"{_BASE_URI}#{pointer}"},
                                                                   registry=registry)

    # --- reading the document -----------------------------------------------------------------
    def resolve(self, node: dict) -> dict:
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref: str) -> dict:
        assert ref.startswith("#/"), f"only local references are used: {ref}"
        node = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _messages(self, action: str) -> dict[str, str]:
        """frame type -> JSON pointer of its payload schema, for every message of ``action`` operations."""
        found: dict[str, str] = {}
        for operation in self.doc["operations"].values():
            if operation["action"] != action:
                continue
            for ref in operation["messages"]:
                message = self.resolve(self.pointer(ref["$ref"]))
                payload_ref = message["payload"]["$ref"]  # every payload is a components/schemas entry
                kind = self.resolve(self.pointer(payload_ref))["properties"]["type"]["const"]
                found[kind] = payload_ref[1:]
        return found

    def payload_schema(self, direction: str, kind: str) -> dict:
        messages = self.client_messages if direction == "client" else self.server_messages
        return self.resolve(self.pointer("#" + messages[kind]))

    # --- validating -------------------------------------------------------------------------
    def errors(self, direction: str, frame) -> list[str]:
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return ['a frame is a JSON object with a string "type"']
        validator = self._validators.get((direction, frame["type"]))
        if validator is None:
            return [f"the spec has no {direction} frame of type {frame['type']!r}"]
        return [f"{'/'.join(map(str, e.absolute_path)) or '(frame)'}: {e.message}"
                for e in validator.iter_errors(frame)]

    def validate(self, direction: str, frame) -> None:
        if problems := self.errors(direction, frame):
            raise SpecViolation(f"{direction} frame {frame!r} breaks docs/asyncapi.yaml: " + "; ".join(problems))

    def validate_client(self, frame) -> None:
        self.validate("client", frame)

    def validate_server(self, frame) -> None:
        self.validate("server", frame)


def _close_objects(node) -> None:
    """Strict mode: every object schema that lists properties refuses the ones it does not list."""
    if isinstance(node, dict):
        if "properties" in node and node.get("additionalProperties", True) is True:
            node["additionalProperties"] = False
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_objects(value)


def load_document(path: Path = SPEC_PATH) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=4)
def load_spec(strict: bool = False, path: Path = SPEC_PATH) -> ProtocolSpec:
    return ProtocolSpec(load_document(path), strict=strict)


def asyncapi_validator():
    """A validator for the official AsyncAPI 3.0.0 JSON Schema, vendored in docs/schemas/."""
    import json

    from jsonschema import Draft7Validator

    with open(ASYNCAPI_SCHEMA_PATH, encoding="utf-8") as f:
        return Draft7Validator(json.load(f))


class ValidatingTransport:
    """Wraps a client transport; every frame sent and received must match the spec."""

    def __init__(self, inner, spec: ProtocolSpec | None = None):
        self.inner = inner
        self.spec = spec or load_spec(strict=True)
        self.sent: list[dict] = []
        self.received: list[dict] = []

    async def connect(self) -> None:
        await self.inner.connect()

    async def send(self, frame: dict) -> None:
        self.spec.validate_client(frame)
        self.sent.append(frame)
        await self.inner.send(frame)

    async def recv(self) -> dict:
        frame = await self.inner.recv()
        self.spec.validate_server(frame)
        self.received.append(frame)
        return frame

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name):  # e.g. the tests' transport._ws
        return getattr(self.inner, name)
