"""The policy at work (see `core.policy`): what each index refuses and hides, counted in the
metrics and, for what `audit` mode lets through, logged once per request."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from ..core.config import Index, Upstream
from ..core.model import FileLink, FileOrigin, NormalizedName, ProjectPage
from ..core.policy import Judge, PolicyKey, Refusal, Screened, refuse_project, screen
from ..core.routing import policy_for
from ..core.units import upload_time
from .advisory_files import AdvisoryFiles
from .index_db import IndexDB
from .metrics import Metrics

log = logging.getLogger("pypi_proxy.policy")

# With a `min_age`, pages are screened again this often: a file comes of age on its page at
# most this late (its file URL answers as soon as it does).
AGE_STEP = 60.0


@dataclass(frozen=True)
class PageScreen:
    """How one index screens one project's page: `key` and `version` name the result, so
    that a rendered page is kept until either changes."""

    key: Hashable
    version: Hashable
    screen: Callable[[ProjectPage], Screened]


class Screening:
    def __init__(
        self,
        db: IndexDB,
        advisories: AdvisoryFiles,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._advisories = advisories
        self._metrics = metrics
        self._clock = clock

    def project(self, index: Index, name: NormalizedName, *, count: bool = True) -> Refusal | None:
        """Whether the index refuses the project outright (`deny`, `only`); counted in the
        metrics unless `count` is false (the proxy asking itself, not a client)."""
        refusal = refuse_project(policy_for(index, name), name)
        if refusal is not None and count:
            self._metrics.policy_hidden(refusal.policy)
        return refusal

    def names(self, index: Index, names: Iterable[NormalizedName]) -> list[NormalizedName]:
        """The names of an index root that the index does not refuse."""
        policies = {index.policy, *(r.policy for r in index.routes)}
        if not any(p.screens_names for p in policies):
            return list(names)
        return [n for n in names if refuse_project(policy_for(index, n), n) is None]

    def file(
        self, index: Index, origin: FileOrigin, what: str, *, count: bool = True
    ) -> Refusal | None:
        """Whether the index hides this file (`what` names the request in an audit line);
        audited and counted unless `count` is false, as for `project`."""
        judge = self._judge(index, origin.page.name)
        if judge is None:
            return None
        uploaded = self._uploaded(origin.upstream, origin.link)
        verdict = judge.file(origin.page.name, origin.link, uploaded)
        if not count:
            return verdict.refusal
        self.audit(what, verdict.audited)
        if verdict.refusal is not None:
            self._metrics.policy_hidden(verdict.refusal.policy)
        return verdict.refusal

    def page(
        self, index: Index, name: NormalizedName, group_of: Callable[[str], Upstream]
    ) -> PageScreen | None:
        """How the index screens this project's page (None: it shows every file);
        `group_of` names the upstream group a filename on the page comes from."""
        judge = self._judge(index, name)
        if judge is None:
            return None
        step = int(judge.now // AGE_STEP) if judge.policy.min_age is not None else 0

        def uploaded(link: FileLink) -> float:
            return self._uploaded(group_of(link.filename), link)

        return PageScreen(
            key=judge.policy,
            version=(judge.advisories.generation, step),
            screen=lambda page: screen(judge, page, uploaded),
        )

    def count(self, hidden: Counter[PolicyKey]) -> None:
        """What a page served left out, by the key that hid it."""
        for policy, files in hidden.items():
            self._metrics.policy_hidden(policy, files)

    def audit(self, what: str, audited: tuple[str, ...]) -> None:
        """What audit mode let through for one request, in one line."""
        if audited:
            log.warning("audit: %s: would be refused by advisory %s", what, ", ".join(audited))

    def _judge(self, index: Index, name: NormalizedName) -> Judge | None:
        """The policy for the project now; None if it hides no file."""
        policy = policy_for(index, name)
        if not policy.screens_files:
            return None
        return Judge(policy, self._clock(), self._advisories.index(policy.advisories))

    def _uploaded(self, upstream: Upstream, link: FileLink) -> float:
        """The file's upload time; failing closed, when the proxy first listed it (pages are
        stored with that time; this is for a page stored before it was kept)."""
        listed = upload_time(link.upload_time)
        return self._db.listed_at(upstream, link, self._clock()) if listed is None else listed
