"""Leases in the store: one named lease per job (the worker's), so two workers started
on one database by mistake do not both judge and tell.

Part of `bot.store`: `LeasesMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from .connection import Connection, translated

LEASE_SQL = "select holder, expires_at from leases where name = ?"
# Take the lease when nobody holds it, renew it when we do, take it over when it has
# lapsed; a row comes back only then. One statement, so the check and the write are
# one step against any other writer on both engines (PostgreSQL locks the row it
# updates and judges the condition on its newest version; SQLite has one writer).
TAKE_SQL = (
    "insert into leases (name, holder, expires_at) values (?, ?, ?) on conflict (name) "
    "do update set holder = excluded.holder, expires_at = excluded.expires_at "
    "where leases.holder = excluded.holder or leases.expires_at < ? returning holder"
)


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
        One statement checks and writes (`TAKE_SQL`; on PostgreSQL one round trip);
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
        with translated("taking a lease"):
            # fetchall: SQLite commits a statement with RETURNING once it has run to its end.
            taken = self.db.execute(TAKE_SQL, [name, holder, wall + ttl, wall]).fetchall()
        return bool(taken)

    def release_lease(self, name: str, holder: str) -> None:
        with translated("releasing a lease"), self._atomic():
            self.db.execute("delete from leases where name = ? and holder = ?", [name, holder])
