"""Leases in the store: one named lease per job (the worker's), so two workers started
on one database by mistake do not both judge and tell.

Part of `bot.store`: `LeasesMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from .connection import Connection, translated

LEASE_SQL = "select holder, expires_at from leases where name = ?"


class LeasesMixin(Connection):
    def hold_lease(
        self,
        name: str,
        holder: str,
        wall: float,
        ttl: float,
        known: tuple[str, float] | None = None,
    ) -> bool:
        """Take or renew the lease `name` for `ttl` seconds; False while another holds it.

        Two workers started on one database by mistake would otherwise both judge and
        tell, each from its own partial view, and could post the same incident twice.
        The write lock taken at once makes the check and the write one step against the
        other process;
        a lease of ours with more than half its time left is renewed without a write.
        `known`, the lease's (holder, expires_at) as the caller read it this cycle,
        spares the first read: a lease of ours that has not lapsed changes only when we
        give it back.
        """
        row = known
        if row is None:
            with translated("reading a lease"):
                row = self.db.execute(LEASE_SQL, [name]).fetchone()
        if row is not None and row[0] == holder and row[1] - wall > ttl / 2:
            return True
        with translated("taking a lease"), self._atomic():
            row = self.db.execute(LEASE_SQL, [name]).fetchone()
            free = row is None or row[0] == holder or row[1] < wall
            if free:
                self.db.upsert_all(
                    "leases",
                    [{"name": name, "holder": holder, "expires_at": wall + ttl}],
                    pk="name",
                )
        return free

    def release_lease(self, name: str, holder: str) -> None:
        with translated("releasing a lease"), self._atomic():
            self.db.execute("delete from leases where name = ? and holder = ?", [name, holder])
