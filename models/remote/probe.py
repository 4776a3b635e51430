"""Is a remote model's server there? One `GET {base_url}/models` under the model's connect and read timeouts:
reachable or not (and why), the round trip, and whether the server lists the configured model name."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ggroute.core.errors import GgrouteError
from ggroute.models.catalog import RemoteSpec
from ggroute.models.remote.model import make_client
from ggroute.models.remote.stream import Where, upstream_error


@dataclass(frozen=True)
class Probe:
    reachable: bool
    latency_ms: float | None  # the GET's round trip, when it answered
    lists_model: bool | None  # the configured `model` is among the server's models (None: it listed none)
    error: str | None  # why it is not usable: unreachable, an HTTP error, a missing key


def probe(spec: RemoteSpec) -> Probe:
    s = spec.settings
    where = Where(spec.name, spec.base_url, s.connect_timeout_s, s.read_timeout_s)
    try:
        client = make_client(spec)
    except GgrouteError as exc:  # a missing API key: nothing to send
        return Probe(False, None, None, str(exc))
    started = time.perf_counter()
    try:
        with client:
            ids = [m.id for m in client.models.list().data]
    except Exception as exc:  # every failure of the request becomes words, never a traceback
        return Probe(False, None, None, str(upstream_error(exc, where, before_output=True)))
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return Probe(True, latency_ms, spec.upstream_model in ids if ids else None, None)
