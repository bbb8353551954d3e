"""Every Redis key of the shared work queue, under one configurable prefix (default "tamer").

| key                          | type   | holds                                                      | expires            |
|------------------------------|--------|------------------------------------------------------------|--------------------|
| {p}:seq                      | string | arrival counter (the FCFS tie-break inside queue members)  | never              |
| {p}:q:{deployment}           | zset   | waiting jobs; member "{arrival:016d}:{job_id}", score: sort key | empties itself |
| {p}:wake:{deployment}        | list   | wake-up tokens (up to 16) for idle workers, who BLPOP it   | popped             |
| {p}:job:{job_id}             | hash   | the job (JSON), state, owner, attempt, reply inbox, flags  | timeout + result TTL; result TTL once done |
| {p}:log:{job_id}             | list   | the job's committed events (JSON), in order                | with its job       |
| {p}:leases                   | zset   | running job id -> lease deadline (ms, the Redis clock)     | empties itself     |
| {p}:running:{deployment}     | set    | job ids in flight                                          | empties itself     |
| {p}:tokens:{deployment}      | string | predicted tokens of the jobs in flight                     | never              |
| {p}:workers:{deployment}     | zset   | worker id -> last heartbeat (ms)                           | stale ones trimmed |
| {p}:worker:{worker_id}       | hash   | a worker's host, pid, deployments, concurrency             | 3 leases           |
| {p}:inbox:{proxy_id}         | list   | events of the jobs one proxy waits on: [job id, index, event] | result TTL idle |

The Lua scripts build the per-job names from the same templates (`lua_prelude`), so this module is the
only place a key name is spelled. The scripts touch keys they discover while running, so the queue needs
one Redis (a primary with replicas or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import re

_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.\-:{}]{1,64}$")
MEMBER_ID_OFFSET = 17  # a queue member is 16 digits of arrival order, ':', then the job id

# kind -> the name's middle part; a part ending in ':' takes an argument (deployment, job, worker or proxy id)
_PARTS = {"seq": "seq", "queue": "q:", "wake": "wake:", "job": "job:", "log": "log:", "leases": "leases",
          "running": "running:", "tokens": "tokens:", "workers": "workers:", "worker": "worker:", "inbox": "inbox:"}


class RedisKeys:
    """Key names for one prefix; two prefixes on one Redis are two independent queues."""

    def __init__(self, prefix: str = "tamer") -> None:
        if not _PREFIX_PATTERN.match(prefix):
            raise ValueError(f"queue key prefix {prefix!r} must be 1-64 characters of letters, digits and _.-:{{}}")
        self.prefix = prefix

    def _name(self, kind: str, arg: str = "") -> str:
        return f"{self.prefix}:{_PARTS[kind]}{arg}"

    def seq(self) -> str:
        return self._name("seq")

    def queue(self, deployment: str) -> str:
        return self._name("queue", deployment)

    def wake(self, deployment: str) -> str:
        return self._name("wake", deployment)

    def job(self, job_id: str) -> str:
        return self._name("job", job_id)

    def log(self, job_id: str) -> str:
        return self._name("log", job_id)

    def leases(self) -> str:
        return self._name("leases")

    def running(self, deployment: str) -> str:
        return self._name("running", deployment)

    def tokens(self, deployment: str) -> str:
        return self._name("tokens", deployment)

    def workers(self, deployment: str) -> str:
        return self._name("workers", deployment)

    def worker(self, worker_id: str) -> str:
        return self._name("worker", worker_id)

    def inbox(self, proxy_id: str) -> str:
        return self._name("inbox", proxy_id)

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this prefix (tests clean up with it)."""
        return f"{self.prefix}:*"

    def lua_prelude(self) -> str:
        """Lua functions k_<kind>(arg) naming the same keys, for the scripts (the prefix is checked, so it
        quotes safely)."""
        lines = []
        for kind, part in _PARTS.items():
            if part.endswith(":"):
                lines.append(f"local function k_{kind}(x) return '{self.prefix}:{part}' .. x end")
            else:
                lines.append(f"local function k_{kind}() return '{self.prefix}:{part}' end")
        return "\n".join(lines) + "\n"
