"""The appliance sessions the gateway keeps between requests: conversations by the key of their history (so a
request whose messages extend an earlier answer continues that session, sending only the new user turn), and
idle sessions for requests that start a new transcript (no cookie round trip each time).

A conversation's key is the SHA-256 of its messages (role and text, surrounding whitespace ignored) up to and
including the assistant's latest reply. Each appliance holds 16 sessions and evicts its least recently used idle
one to open another; the gateway keeps at most `per_appliance` conversations there (closing its least recently
used beyond that) and two idle sessions, leaving room for other clients. A session the appliance dropped anyway
answers GONE, and the request is carried to a new transcript (dte_build.conversation).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..client import Client
from ..conversation import Message

if TYPE_CHECKING:
    from .backend import Appliance

IDLE_PER_APPLIANCE = 2


def conversation_key(messages: tuple[Message, ...] | list[Message]) -> str:
    data = json.dumps([[m.role, m.content.strip()] for m in messages], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


class SessionStore:
    """Open sessions by conversation key (least recently used first) and idle ones, per appliance."""

    def __init__(self, per_appliance: int = 8) -> None:
        self.per_appliance = per_appliance
        self.conversations: OrderedDict[str, tuple[Appliance, Client]] = OrderedDict()
        self.idle: dict[str, list[Client]] = {}

    def take(self, key: str) -> tuple[Appliance, Client] | None:
        """The session holding conversation `key`, now the caller's."""
        return self.conversations.pop(key, None)

    def keep(self, key: str, appliance: Appliance, client: Client) -> None:
        old = self.conversations.pop(key, None)
        if old is not None:
            old[1].close()
        self.conversations[key] = (appliance, client)
        mine = [k for k, (a, _) in self.conversations.items() if a.endpoint == appliance.endpoint]
        for k in mine[:max(0, len(mine) - self.per_appliance)]:
            self.conversations.pop(k)[1].close()

    def take_idle(self, appliance: Appliance) -> Client | None:
        clients = self.idle.get(appliance.endpoint)
        return clients.pop() if clients else None

    def put_idle(self, appliance: Appliance, client: Client) -> None:
        clients = self.idle.setdefault(appliance.endpoint, [])
        clients.append(client)
        while len(clients) > IDLE_PER_APPLIANCE:
            clients.pop(0).close()

    def drop(self, appliance: Appliance) -> None:
        """Forget every session on `appliance` (it went down: they are gone with it)."""
        for key in [k for k, (a, _) in self.conversations.items() if a.endpoint == appliance.endpoint]:
            self.conversations.pop(key)[1].close()
        for client in self.idle.pop(appliance.endpoint, []):
            client.close()

    def close(self) -> None:
        for _, client in self.conversations.values():
            client.close()
        for clients in self.idle.values():
            for client in clients:
                client.close()
        self.conversations.clear()
        self.idle.clear()
