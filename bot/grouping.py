"""Grouping: which incident (one Slack parent) each alert transition is told in, and
when. Pure: the outbox's pending transitions and the incidents still open in, a plan out.

Sits between the outbox and the Slack notifier (`notify.slack` asks for a plan before it
delivers, stores the incidents it returns, then tells each transition in its thread).
Like Alertmanager's route grouping, in data time:

* A firing key joins an open incident of its partition (its rule's `grouping.group` and
  the values of `grouping.by`); else, with inhibition, the incident of an account-wide
  alert of its metric firing in its channel (FOLD), or, itself account-wide, an open
  incident of its metric's per-group keys (JOIN); else it opens an incident.
* group_wait: an incident is opened (its parent told) once the data has been judged
  `wait` past its first key's firing; every key that fits it and fired by then is in
  its first parent. Transitions of one judging step arrive together, so `0s` groups the
  keys of one step; the judging step is 5 minutes.
* group_interval: later changes to an incident (keys joining, keys resolving) wait until
  `interval` of data time has passed since its last change; all changes due then are
  told together.

A transition held back this way waits in the outbox, and so does every later one of its
key (their order is kept), and every later one that would join the incident it waits for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.models import (
    FIRING,
    FOLD,
    JOIN,
    OPEN,
    REMINDER,
    RESOLVED,
    AlertGroup,
    GroupMember,
    Rule,
    Transition,
)

Pending = Sequence[tuple[int, Transition]]


@dataclass(frozen=True)
class Scope:
    """How one rule's alerts are grouped, with its defaults filled in."""

    family: str  # the group name: rules naming one share incidents
    by: tuple[str, ...]  # fields of the rule's group_by that keep incidents apart
    wait: float
    interval: float
    metric: str
    channel: str  # where it posts ("" when nowhere is configured)
    account_wide: bool  # group_by []: an inhibition source


def scope_of(rule: Rule, default_channel: str | None) -> Scope:
    grouping = rule.grouping
    return Scope(
        family=grouping.group or rule.name,
        by=grouping.by,
        wait=grouping.wait,
        interval=grouping.interval,
        metric=rule.metric,
        channel=rule.channel or default_channel or "",
        account_wide=not rule.group_by,
    )


def partition(scope: Scope, group_by: Sequence[str], group: Sequence[str]) -> str:
    """'failed-job-rate', or 'failures|model=pro' when grouped by model."""
    values = dict(zip(group_by, group, strict=False))
    return "|".join([scope.family, *(f"{field}={values.get(field, '')}" for field in scope.by)])


def fits(
    t: Transition,
    scope: Scope,
    group: AlertGroup,
    scopes: Mapping[str, Scope],
    inhibit: bool,
) -> str | None:
    """How `t` (a firing) would enter `group`: JOIN, FOLD, or None when it does not fit."""
    if group.channel != scope.channel:
        return None
    if group.partition == partition(scope, t.group_by, t.group):
        return JOIN
    if not inhibit:
        return None
    for member in group.firing:
        other = scopes.get(member.rule)
        if other is None or other.metric != scope.metric:
            continue
        if other.account_wide and not scope.account_wide:
            return FOLD  # an account-wide alert of this metric is firing: told in its thread
        if scope.account_wide and not other.account_wide:
            return JOIN  # the account-wide view of an incident already told per group
    return None


@dataclass(frozen=True)
class Plan:
    """What to tell now: the transitions due, in outbox order, and the incidents the plan
    opened or changed (to store before anything is told)."""

    due: tuple[int, ...]
    changed: tuple[AlertGroup, ...]


def plan(
    pending: Pending,
    groups: Iterable[AlertGroup],
    scopes: Mapping[str, Scope],
    *,
    inhibit: bool,
    now: datetime | None,
) -> Plan:
    """Route each pending transition (oldest first, none held back by a silence) to its
    incident, and say which are due at `now` (data time; None: all of them).

    `groups` holds the incidents still firing and any that a pending transition was
    routed to before (its route is kept: a plan is repeated until everything is told).
    """
    return _Planner(groups, scopes, inhibit, now).run(pending)


class _Planner:
    def __init__(
        self,
        groups: Iterable[AlertGroup],
        scopes: Mapping[str, Scope],
        inhibit: bool,
        now: datetime | None,
    ) -> None:
        self.groups = {g.id: g for g in groups}
        self.scopes = scopes
        self.inhibit = inhibit
        self.now = now
        self.routed = {
            tid
            for g in self.groups.values()
            for m in g.members
            for tid in (m.fired_tid, m.resolved_tid)
            if tid is not None
        }
        self.changed: dict[str, AlertGroup] = {}
        self.due: list[int] = []
        self.blocked: set[tuple[str, tuple[str, ...]]] = set()  # keys waiting, in order
        self.waiting: list[AlertGroup] = []  # incidents not opened yet (group_wait)
        self.taken: set[int] = set()  # routed by an opening in this plan
        self.flushing: set[str] = set()  # incidents already changed in this plan

    def run(self, pending: Pending) -> Plan:
        later = list(pending)
        for index, (tid, t) in enumerate(later):
            key = (t.rule, t.group)
            if key in self.blocked:
                continue
            if tid in self.taken or tid in self.routed:
                self.due.append(tid)
                continue
            scope = self.scopes.get(t.rule)
            if scope is None:  # no longer configured: the notifier says so
                self.due.append(tid)
                continue
            if t.state == RESOLVED:
                self._resolve(tid, t)
            elif t.state == REMINDER and self._firing_in(key) is not None:
                self.due.append(tid)  # a reply in its incident's thread, never held
            else:  # a firing, or a reminder of a key never told (it fired under a silence)
                self._fire(tid, t, scope, later[index + 1 :])
        return Plan(tuple(self.due), tuple(self.changed.values()))

    # -- the three kinds ---------------------------------------------------------------

    def _resolve(self, tid: int, t: Transition) -> None:
        group = self._firing_in((t.rule, t.group))
        if group is None:  # never told in an incident: the notifier tells it on its own
            self.due.append(tid)
            return
        if not self._update_due(group):
            self.blocked.add((t.rule, t.group))
            return
        members = tuple(
            replace(m, state=RESOLVED, resolved_at=t.at, resolved_tid=tid)
            if m.key == (t.rule, t.group)
            else m
            for m in group.members
        )
        status = FIRING if any(m.state == FIRING for m in members) else RESOLVED
        self._save(replace(group, members=members, status=status, updated_at=_later(group, t)))
        self.due.append(tid)

    def _fire(self, tid: int, t: Transition, scope: Scope, later: Pending) -> None:
        key = (t.rule, t.group)
        current = self._firing_in(key)
        if current is not None:  # told firing already (adopted from Slack): a new record
            member = current.member(*key)
            assert member is not None
            self._save(_with_member(current, _member(t, tid, scope, member.how)))
            self.due.append(tid)
            return
        target = self._target(t, scope)
        if target is None or target[0].partition != partition(scope, t.group_by, t.group):
            for index, waiting in enumerate(self.waiting):
                # It belongs with an incident not told yet: it waits for it (and joins it).
                if fits(t, scope, waiting, self.scopes, self.inhibit):
                    self.waiting[index] = _with_member(waiting, _member(t, tid, scope, JOIN))
                    self.blocked.add(key)
                    return
        if target is not None:
            group, how = target
            if not self._update_due(group):
                self.blocked.add(key)
                return
            changed = _with_member(group, _member(t, tid, scope, how))
            self._save(replace(changed, updated_at=_later(group, t)))
            self.due.append(tid)
            return
        opened = AlertGroup(
            id=t.idempotency_key,
            partition=partition(scope, t.group_by, t.group),
            channel=scope.channel,
            status=FIRING,
            opened_at=t.at,
            updated_at=t.at,
            members=(_member(t, tid, scope, OPEN),),
            opened_by=tid,
        )
        if self.now is not None and self.now < t.at + timedelta(seconds=scope.wait):
            self.waiting.append(opened)
            self.blocked.add(key)
            return
        self._save(self._gather(opened, t.at + timedelta(seconds=scope.wait), later))
        self.due.append(tid)

    # -- helpers -----------------------------------------------------------------------

    def _gather(self, group: AlertGroup, until: datetime, later: Pending) -> AlertGroup:
        """The first parent's keys: every later firing that fits the new incident and
        fired by `until`, until none is left (an account-wide key that fits brings in
        the per-group keys of its metric of other groups)."""
        grew = True
        while grew:
            grew = False
            for tid, u in later:
                if tid in self.taken or tid in self.routed or u.at > until:
                    continue
                key = (u.rule, u.group)
                scope = self.scopes.get(u.rule)
                if scope is None or key in self.blocked or group.member(*key) is not None:
                    continue
                if u.state not in (FIRING, REMINDER) or self._firing_in(key) is not None:
                    continue
                if fits(u, scope, group, self.scopes, self.inhibit) is None:
                    continue
                group = _with_member(group, _member(u, tid, scope, OPEN))
                group = replace(group, updated_at=max(group.updated_at, u.at))
                self.taken.add(tid)
                grew = True
        return group

    def _target(self, t: Transition, scope: Scope) -> tuple[AlertGroup, str] | None:
        """The open incident `t` enters: its own partition's first, else one it folds
        into (or, account-wide, joins), the oldest first."""
        found = [
            (g, how)
            for g in sorted(self._open(), key=lambda g: (g.opened_at, g.id))
            if (how := fits(t, scope, g, self.scopes, self.inhibit)) is not None
        ]
        own = partition(scope, t.group_by, t.group)
        found.sort(key=lambda item: item[0].partition != own)  # stable: oldest first
        return found[0] if found else None

    def _update_due(self, group: AlertGroup) -> bool:
        """A change to an incident is told `interval` after its last one (data time);
        every change due in one plan goes together."""
        if self.now is None or group.id in self.flushing:
            return True
        scope = next((self.scopes[m.rule] for m in group.members if m.rule in self.scopes), None)
        interval = scope.interval if scope is not None else 0.0
        return self.now >= group.updated_at + timedelta(seconds=interval)

    def _firing_in(self, key: tuple[str, tuple[str, ...]]) -> AlertGroup | None:
        for group in self._open():
            member = group.member(*key)
            if member is not None and member.state == FIRING:
                return group
        return None

    def _open(self) -> list[AlertGroup]:
        return [g for g in self.groups.values() if g.status == FIRING]

    def _save(self, group: AlertGroup) -> None:
        self.groups[group.id] = group
        self.changed[group.id] = group
        self.flushing.add(group.id)


def _member(t: Transition, tid: int, scope: Scope, how: str) -> GroupMember:
    return GroupMember(
        rule=t.rule,
        group=t.group,
        group_by=t.group_by,
        metric=scope.metric,
        state=FIRING,
        how=how,
        since=t.since or t.at,
        at=t.at,
        value=t.value,
        baseline=t.baseline,
        zscore=t.zscore,
        fired_tid=tid,
    )


def _with_member(group: AlertGroup, member: GroupMember) -> AlertGroup:
    """The incident with `member` added, or in place of the record of its key."""
    members = [m for m in group.members if m.key != member.key]
    position = next((i for i, m in enumerate(group.members) if m.key == member.key), None)
    members.insert(len(members) if position is None else position, member)
    return replace(group, members=tuple(members), status=FIRING)


def _later(group: AlertGroup, t: Transition) -> datetime:
    return max(group.updated_at, t.at)


def lead(group: AlertGroup, scopes: Mapping[str, Scope]) -> GroupMember:
    """The member an incident is headed by: an account-wide one (what the others are
    folded under), else the first."""
    for member in group.members:
        scope = scopes.get(member.rule)
        if scope is not None and scope.account_wide:
            return member
    return group.members[0]


def as_of(group: AlertGroup, tid: int) -> AlertGroup:
    """The incident as it stood when transition `tid` is told: keys that joined after it
    left out, resolves after it undone (one plan may route several changes, told one
    after the other; each message shows its own moment)."""
    members = []
    for member in group.members:
        if member.how != OPEN and member.fired_tid is not None and member.fired_tid > tid:
            continue
        if member.resolved_tid is not None and member.resolved_tid > tid:
            member = replace(member, state=FIRING, resolved_at=None, resolved_tid=None)
        members.append(member)
    status = FIRING if any(m.state == FIRING for m in members) else RESOLVED
    return replace(group, members=tuple(members), status=status)
